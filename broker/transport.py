"""kombu's Redis transport with a reliable fetch: no message is lost when Redis dies between taking a message
and recording it unacknowledged.

kombu takes a message with BRPOP and then, in a second command, records it in its `unacked` hash. Redis
killed between the two (or a connection cut after BRPOP ran but before its reply arrived) loses the message:
it is in no list and in no hash. Kiln's transport moves it instead into a fetch list of the consuming
channel, `kiln:fetching:<fetcher>:<queue key>`, so it stays in Redis (and in its append-only file) the whole
time:

- the channel holds a lease, `kiln:fetcher-alive:<fetcher>` (a key expiring after the transport option
  `kiln_dead_after`, Kiln's KILN_WORKER_DEAD_AFTER_SECONDS), set before it takes a message, and
  registers its fetch lists in the set `kiln:fetch-lists`;
- recording the message unacknowledged is one Lua script: it removes the message from the fetch list and,
  only if it was still there, adds it to `unacked`. The message lives in exactly one place;
- a channel whose fetch may have lost a reply (a connection error, a disconnect while it waited) takes a new
  fetcher identity, so its old lists are left to recovery;
- `fetch_lists_recover`, run once a scan interval by the worker whose turn it is (broker/lease.py), moves
  the messages of every fetch list whose fetcher lease expired back to the consuming end of their queue, in
  one script per list, so a live fetcher's list is never touched. A late delivery of a message recovery
  already put back finds it gone from its fetch list and drops it instead of running it twice;
- a message that cannot be delivered (not kombu's, an undecodable body) is moved to `kiln:fetch-malformed`
  for an operator, instead of going round between a crashing worker and recovery.

A consumer of one queue key waits with BLMOVE. BLMOVE waits on one key, so a consumer of several (several
queues, or priority steps) takes the first message in its queue order with a script, and when all are
empty waits with BLMOVE on one of them for at most MULTI_KEY_WAIT seconds. That is why Kiln runs each queue
as one key (`priority_steps` [0]; Kiln's priorities are its queues) and each pool on one queue.

A full Redis (maxmemory with `noeviction`) refuses BLMOVE, but a script may write once it has freed memory:
the scripts pop before they push, so workers keep draining queues while Redis is full (waiting, when all
are empty, with a BLPOP on a key nobody writes). Consumers that acknowledge nothing (no_ack: the reply
queues of remote-control clients) keep kombu's BRPOP: for them a delivered message is gone anyway.
Needs Redis 6.2 or later (BLMOVE).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from queue import Empty
from time import monotonic, time
from typing import Any, Protocol

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

FETCHING_PREFIX = "kiln:fetching:"
FETCHER_ALIVE_PREFIX = "kiln:fetcher-alive:"
FETCH_LISTS = "kiln:fetch-lists"
# Messages that cannot be delivered: moved aside for an operator rather than fetched (and recovered) for ever.
MALFORMED = "kiln:fetch-malformed"
# A key nothing writes: BLPOP on it is a wait that needs no memory (Redis full).
IDLE_KEY = "kiln:fetch-idle"
# A consumer of several keys, when all were empty, waits this long on one of them before it looks at all
# of them again: the longest extra wait of a message on another key while the consumer is idle.
MULTI_KEY_WAIT = 0.25
# After Redis refused a fetch for memory, fetch by script only for this long.
OUT_OF_MEMORY_BACKOFF = 10.0
FETCHER_ID_LENGTH = 32  # uuid4().hex
# The transport option (CELERY_BROKER_TRANSPORT_OPTIONS) that sets how long a fetcher's lease lasts, and a
# worker's (broker/worker.py); 0 turns both off. The channel attribute of the same name holds it.
DEAD_AFTER_OPTION = "kiln_dead_after"

# Take the first message of KEYS (in order) into its fetch list ARGV[1] .. key, renewing the fetcher's lease
# ARGV[2] (value ARGV[3], ARGV[4] seconds) and registering the list in ARGV[5]. Returns {key, message}.
# The pop comes first: a script that has freed memory may write even in a full Redis.
FETCH_SCRIPT = """
for _, key in ipairs(KEYS) do
    local message = redis.call('RPOP', key)
    if message then
        redis.call('SET', ARGV[2], ARGV[3], 'EX', ARGV[4])
        redis.call('SADD', ARGV[5], ARGV[1] .. key)
        redis.call('LPUSH', ARGV[1] .. key, message)
        return {key, message}
    end
end
return false
"""

# Record a fetched message unacknowledged, only if it is still in its fetch list (recovery did not put it
# back meanwhile). KEYS: fetch list, unacked index, unacked hash. ARGV: message, tag, time, hash value.
RECORD_SCRIPT = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
"""

# Move one fetched message from its fetch list KEYS[1] to the head of KEYS[2] (MALFORMED), or to the
# consuming end of KEYS[2] (its queue) when ARGV[2] is "back". 0: it was no longer there.
MOVE_SCRIPT = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
if ARGV[2] == 'back' then
    redis.call('RPUSH', KEYS[2], ARGV[1])
else
    redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
"""

# Put the messages of a dead fetcher's list back at the consuming end of their queue, oldest taken last so
# that it comes out first. KEYS: fetch list, fetcher lease, FETCH_LISTS, queue key. -1: the fetcher lives.
RESTORE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then
    return -1
end
local restored = 0
while true do
    local message = redis.call('LPOP', KEYS[1])
    if not message then
        break
    end
    redis.call('RPUSH', KEYS[4], message)
    restored = restored + 1
end
redis.call('SREM', KEYS[3], KEYS[1])
return restored
"""


class FetchRevoked(Exception):
    """The fetched message was put back by recovery before it could be recorded: it is not delivered here."""


@dataclass(frozen=True)
class Fetched:
    fetch_list: str
    raw: bytes
    delivery_tag: str | None


@dataclass(frozen=True)
class FetchSent:
    command: str  # BLMOVE, EVAL (the fetch script) or BLPOP (a wait)
    key: str | None  # the queue key a BLMOVE waits on
    fetch_lists: str  # the fetch-list prefix of the fetcher that sent it


def fetch_list_parts(fetch_list: str) -> tuple[str, str]:
    """(fetcher id, queue key) of a fetch list's name."""
    rest = fetch_list[len(FETCHING_PREFIX) :]
    return rest[:FETCHER_ID_LENGTH], rest[FETCHER_ID_LENGTH + 1 :]


def _out_of_memory(error: BaseException) -> bool:
    return isinstance(error, redis.exceptions.OutOfMemoryError)


class Acknowledger(Protocol):
    returned: bool

    def acknowledge(self, delivery_tag: str) -> None: ...


# A Kiln worker marks its broker connections (kombu `Connection` objects) with two attributes, read by the
# channels of that connection: the worker's lease (broker/lease.py), which acknowledges a job that outlived
# its channel, and whether the connection was lost (set by broker/worker.py's Consumer before Celery closes
# it). A connection without them (a publisher, Flower, a test) behaves as kombu's.
LEASE_ATTRIBUTE = "kiln_lease"
LOST_ATTRIBUTE = "kiln_connection_lost"


def connection_lease_attach(connection: Any, lease: Acknowledger | None) -> None:
    setattr(connection, LEASE_ATTRIBUTE, lease)


def connection_mark_lost(connection: Any) -> None:
    setattr(connection, LOST_ATTRIBUTE, True)


def _connection_of(channel: Any) -> Any:
    """The kombu Connection a channel was made for. Kept by the channel itself: kombu detaches a lost
    connection from its transport (`client = None`) before Celery closes its channels."""
    return getattr(channel, "kiln_connection", None)


def _lease_of(channel: Any) -> Acknowledger | None:
    lease = getattr(_connection_of(channel), LEASE_ATTRIBUTE, None)
    return None if lease is None or lease.returned else lease


def _closing_a_lost_worker_connection(channel: Any) -> bool:
    """True in a Kiln worker (its lease held: recovery on) closing the channels of a lost connection."""
    return _lease_of(channel) is not None and getattr(_connection_of(channel), LOST_ATTRIBUTE, False)


class QoS(kombu_redis.QoS):
    def restore_unacked_once(self, stderr: Any = None) -> None:
        """kombu puts every message a closing channel delivered back in its queue. A worker that lost its
        connection is not done with them: the jobs still running would be handed out again while they run.
        They stay in `unacked` instead, owned by the worker: a running one is acknowledged when it
        finishes (`ack`), and its recovery (broker/recovery.py) puts back each one it no longer runs or holds.
        A stopping worker's prefetched jobs go back at once, as kombu does."""
        if not _closing_a_lost_worker_connection(self.channel):
            super().restore_unacked_once(stderr)
            return
        self._on_collect.cancel()
        self._delivered.clear()
        self._delivered.restored = True

    def ack(self, delivery_tag: str) -> None:
        lease = _lease_of(self.channel)
        if self.channel.closed and lease is not None:
            # A job that ran through a lost connection in a Kiln worker, finished after its channel was
            # closed (restore_unacked_once left it in `unacked`): kombu's ack would need the closed
            # channel's client. The lease's connection acknowledges it instead, so it is not run again.
            lease.acknowledge(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        super().ack(delivery_tag)

    def append(self, message: Any, delivery_tag: str) -> None:
        fetched = self.channel._fetched
        if fetched is None or fetched.delivery_tag != delivery_tag:
            super().append(message, delivery_tag)
            return
        delivery = message.delivery_info
        value = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.channel.conn_or_acquire() as client:
            # Sent by its SHA1 (EVALSHA), not its text, at every job; redis-py loads it again into a Redis
            # that lost it (a restart) and retries.
            if self.channel._record_script is None:
                self.channel._record_script = client.register_script(RECORD_SCRIPT)
            recorded = self.channel._record_script(
                keys=[fetched.fetch_list, self.unacked_index_key, self.unacked_key],
                args=[fetched.raw, delivery_tag, time(), value],
                client=client,
            )
        self.channel._fetched = None
        if not recorded:
            raise FetchRevoked(delivery_tag)
        # kombu's in-memory bookkeeping of delivered messages (virtual QoS), as kombu's append does.
        virtual.QoS.append(self, message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    from_transport_options = (*kombu_redis.Channel.from_transport_options, DEAD_AFTER_OPTION)
    # Seconds a fetcher lease lasts; 0 keeps kombu's BRPOP.
    kiln_dead_after = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before kombu's __init__: its poller may look at them as soon as the channel is registered.
        self._fetched: Fetched | None = None
        self._fetch_sent: FetchSent | None = None
        self._fetch_wait_next = False
        self._out_of_memory_until = float("-inf")
        self._no_ack_queues: set[str] = set()
        self._redis_version_checked = False
        self._record_script: Any = None  # RECORD_SCRIPT, registered with redis-py at the first record
        self._fetcher_new()
        super().__init__(*args, **kwargs)
        self.kiln_connection = self.connection.client
        if not self.ack_emulation:  # no `unacked` hash to record messages in: kombu's own fetch
            self.kiln_dead_after = 0
        if self.kiln_dead_after and self.kiln_dead_after < self.brpop_timeout + 2:
            # The lease must outlive a whole BLMOVE wait, or recovery could empty and forget a fetch list
            # the waiting BLMOVE then moves a message into.
            raise ValueError(
                f"kiln_dead_after ({self.kiln_dead_after} s) must be at least the fetch wait "
                f"({self.brpop_timeout} s) plus 2 s"
            )
        if self.kiln_dead_after and self.global_keyprefix:
            raise ValueError("Kiln's reliable fetch does not support kombu's global_keyprefix")

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            # A channel of a closed connection builds a new pool when it is used again, from a connection
            # kombu has detached: AttributeError (kombu issue 582), which Celery takes for an unrecoverable
            # error, and the worker exited instead of reconnecting. It happens when Celery closes a lost
            # connection twice (collect, then close) and the first close was cut short, and when a job
            # that ran through the lost connection is rejected, or acknowledged without a worker lease
            # (QoS.ack), on its closed channel afterwards.
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _fetches_reliably(self) -> bool:
        return bool(self.kiln_dead_after) and any(
            queue not in self._no_ack_queues for queue in self.active_queues
        )

    # -- fetcher identity and lease ------------------------------------------------------------------

    def _fetcher_new(self) -> None:
        """A new identity: the old one's fetch lists, if any message may still sit there, go to recovery."""
        self.fetcher_id = uuid.uuid4().hex
        self._fetcher_refreshed_at = float("-inf")
        self._fetcher_lists: frozenset[str] = frozenset()

    def _fetch_list(self, key: str) -> str:
        return f"{FETCHING_PREFIX}{self.fetcher_id}:{key}"

    def _lease_arguments(self) -> list[Any]:
        """ARGV[2:5] of FETCH_SCRIPT: the lease key, its value, its seconds, the registry of fetch lists."""
        return [
            FETCHER_ALIVE_PREFIX + self.fetcher_id,
            f"{socket.gethostname()}:{os.getpid()}",
            max(int(self.kiln_dead_after), 1),
            FETCH_LISTS,
        ]

    def _fetcher_refresh(self, keys: list[str], wait: float) -> None:
        """Before a BLMOVE: make sure the lease outlives the wait by a second at least (it is refreshed at a
        sixth of its life at the latest) and that recovery knows the fetch lists."""
        lists = frozenset(self._fetch_list(key) for key in keys)
        ttl = self.kiln_dead_after
        if lists <= self._fetcher_lists and monotonic() - self._fetcher_refreshed_at < min(
            ttl / 6, ttl - wait - 1
        ):
            return
        with self.conn_or_acquire() as client:
            if not self._redis_version_checked:
                version = client.info("server").get("redis_version", "0")
                if tuple(int(part) for part in version.split(".")[:2]) < (6, 2):
                    raise RuntimeError(
                        f"Kiln's broker needs Redis 6.2 or later (BLMOVE); this one is {version}"
                    )
                self._redis_version_checked = True
            alive, value, seconds, registry = self._lease_arguments()
            pipe = client.pipeline()
            pipe.set(alive, value, ex=seconds)
            pipe.sadd(registry, *lists)
            pipe.execute()
        self._fetcher_refreshed_at = monotonic()
        self._fetcher_lists = self._fetcher_lists | lists

    # -- fetching ----------------------------------------------------------------------------------

    def _queue_keys(self, queues: list[str]) -> list[str]:
        """The Redis lists of `queues`, in kombu's fetch order: every queue's priority steps, highest first."""
        return list(
            dict.fromkeys(self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues)
        )

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._fetches_reliably():
            self._fetch_sent = None
            super()._brpop_start(timeout)
            return
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys = self._queue_keys(queues)
        prefix = self._fetch_list("")
        out_of_memory = monotonic() < self._out_of_memory_until
        if not out_of_memory and (len(keys) == 1 or self._fetch_wait_next):
            wait = (timeout or 0) if len(keys) == 1 else min(timeout or MULTI_KEY_WAIT, MULTI_KEY_WAIT)
            try:
                self._fetcher_refresh(keys, wait)
            except redis.exceptions.ResponseError as error:
                if not _out_of_memory(error):
                    raise
                self._out_of_memory_note()
                return self._brpop_start(timeout)
            command: list[Any] = ["BLMOVE", keys[0], prefix + keys[0], "RIGHT", "LEFT", wait]
            sent = FetchSent("BLMOVE", keys[0], prefix)
        elif self._fetch_wait_next:  # out of memory, all empty: wait without taking anything
            command, sent = ["BLPOP", IDLE_KEY, MULTI_KEY_WAIT], FetchSent("BLPOP", None, prefix)
        else:
            command = ["EVAL", FETCH_SCRIPT, len(keys), *keys, prefix, *self._lease_arguments()]
            sent = FetchSent("EVAL", None, prefix)
        self._fetch_sent = sent
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)

    def _out_of_memory_note(self) -> None:
        if monotonic() >= self._out_of_memory_until:
            logger.warning(
                "Redis is out of memory (maxmemory, noeviction): fetching by script for %.0f s",
                OUT_OF_MEMORY_BACKOFF,
            )
        self._out_of_memory_until = monotonic() + OUT_OF_MEMORY_BACKOFF

    def _brpop_read(self, **options: Any) -> bool:
        sent = self._fetch_sent
        if sent is None:  # kombu's BRPOP (or nothing outstanding: kombu handles a closed idle connection)
            return super()._brpop_read(**options)
        try:
            try:
                reply = self.client.parse_response(self.client.connection, sent.command, **options)
            except self.connection_errors:
                # The command may have run without its reply reaching us: leave what it took to recovery.
                self._fetcher_new()
                self.client.connection.disconnect()
                raise
            except redis.exceptions.ResponseError as error:
                if not _out_of_memory(error):
                    raise
                self._out_of_memory_note()
                raise Empty() from None
            if sent.command == "BLPOP":
                self._fetch_wait_next = False
                raise Empty()
            if sent.command == "EVAL":
                if not reply:
                    self._fetch_wait_next = True
                    raise Empty()
                key, raw = bytes_to_str(reply[0]), reply[1]
            else:
                self._fetch_wait_next = False
                if reply is None:
                    raise Empty()
                key, raw = sent.key, reply
            assert key is not None
            return self._fetched_deliver(sent.fetch_lists + key, key, raw)
        finally:
            self._fetch_sent = None
            self._in_poll = None
            self._flush_brpop_reauth()

    def _fetched_move(self, fetch_list: str, raw: bytes, destination: str, *, back: bool = False) -> None:
        with self.conn_or_acquire() as client:
            client.eval(MOVE_SCRIPT, 2, fetch_list, destination, raw, "back" if back else "aside")

    def _fetched_parse(self, fetch_list: str, key: str, raw: bytes) -> tuple[dict[str, Any], str]:
        """The message's payload and delivery tag; a message that is not kombu's goes to MALFORMED."""
        try:
            payload = loads(bytes_to_str(raw))
            properties = payload["properties"]
            tag = properties["delivery_tag"]
            delivery = properties["delivery_info"]
            if not (isinstance(tag, str) and isinstance(delivery["exchange"], str)):
                raise TypeError("delivery tag and exchange must be strings")
            delivery["routing_key"]
        except Exception:  # any of them (a RecursionError for a deeply nested body) would crash the consumer
            logger.error("message in %s is not a kombu message; moved to %s", key, MALFORMED)
            self._fetched_move(fetch_list, raw, MALFORMED)
            raise Empty() from None
        return payload, tag

    def _fetched_deliver(self, fetch_list: str, key: str, raw: bytes) -> bool:
        queue = key.rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(queue)
        if queue not in self.connection._callbacks:
            # Its consumer was cancelled while the fetch waited (a paused queue): straight back.
            self._fetched_move(fetch_list, raw, key, back=True)
            raise Empty()
        payload, tag = self._fetched_parse(fetch_list, key, raw)
        if queue in self._no_ack_queues:
            # Nothing to record: the message leaves Redis before its consumer sees it, as with BRPOP.
            if not self._fetched_release(fetch_list, raw):
                raise Empty()
            self.connection._deliver(payload, queue)
            return True
        self._fetched = Fetched(fetch_list, raw, tag)
        try:
            self.connection._deliver(payload, queue)
        except FetchRevoked:
            logger.warning(
                "message %s was put back by recovery before it was delivered here; not delivering", tag
            )
            raise Empty() from None
        except Exception as error:
            self._fetched_failed(error, fetch_list, key, raw, tag)
            raise
        finally:
            self._fetched = None
        return True

    def _fetched_failed(self, error: Exception, fetch_list: str, key: str, raw: bytes, tag: str) -> None:
        """After an error delivering a fetched message: raises Empty when it was moved aside, returns when
        the error is to propagate."""
        if self._fetched is None:  # recorded: the consumer's own error, as with kombu
            return
        if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
            # Not recorded, maybe not even taken out of the fetch list: recovery puts it back.
            self._fetcher_new()
            return
        # Failed before it was recorded (an undecodable body): aside, or it would crash worker after worker
        # through recovery.
        logger.error("message %s in %s cannot be delivered (%r); moved to %s", tag, key, error, MALFORMED)
        self._fetched_move(fetch_list, raw, MALFORMED)
        raise Empty() from error

    def _fetched_release(self, fetch_list: str, raw: bytes) -> bool:
        """Take a message out of the fetch list without recording it (no_ack); False: recovery took it."""
        with self.conn_or_acquire() as client:
            return bool(client.lrem(fetch_list, 1, raw))

    def _get(self, queue: str) -> dict[str, Any]:
        """basic_get: the same reliable fetch, without waiting."""
        if not self.kiln_dead_after:
            return super()._get(queue)
        keys = self._queue_keys([queue])
        prefix = self._fetch_list("")
        with self.conn_or_acquire() as client:
            reply = client.eval(FETCH_SCRIPT, len(keys), *keys, prefix, *self._lease_arguments())
            self._maybe_update_queues_expire(client, queue)
        if not reply:
            raise Empty()
        key, raw = bytes_to_str(reply[0]), reply[1]
        payload, tag = self._fetched_parse(prefix + key, key, raw)
        self._fetched = Fetched(prefix + key, raw, tag)
        return payload

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        if not self.kiln_dead_after:
            return super().basic_get(queue, no_ack, **kwargs)
        try:
            payload = self._get(queue)
        except Empty:
            return None
        fetched = self._fetched
        assert fetched is not None
        try:
            message = self.Message(payload, channel=self)
            if no_ack:
                self._fetched = None
                return message if self._fetched_release(fetched.fetch_list, fetched.raw) else None
            self.qos.append(message, message.delivery_tag)
        except FetchRevoked:
            return None
        except Exception as error:
            try:
                self._fetched_failed(
                    error, fetched.fetch_list, queue, fetched.raw, fetched.delivery_tag or ""
                )
            except Empty:
                return None
            raise
        finally:
            self._fetched = None
        return message

    def _poll_error(self, type: str, **options: Any) -> None:
        if type != "LISTEN" and self._fetch_sent is not None:
            # A socket error while fetching: its reply, if any, is lost with the connection.
            self._fetcher_new()
            self._fetch_sent = None
            self._in_poll = None
            self.client.connection.disconnect()
            return
        super()._poll_error(type, **options)

    def _on_connection_disconnect(self, connection: Any) -> None:
        if self._in_poll is connection and self._fetch_sent is not None:
            self._fetcher_new()
            self._fetch_sent = None
        super()._on_connection_disconnect(connection)


class Transport(kombu_redis.Transport):
    Channel = Channel


def fetch_lists_recover(client: Any) -> int:
    """Put back the messages of every fetch list whose fetcher is gone; returns how many."""
    restored = 0
    restore = client.register_script(RESTORE_SCRIPT)  # EVALSHA: its text is not sent once per list
    for member in client.smembers(FETCH_LISTS):
        fetch_list = bytes_to_str(member)
        fetcher_id, key = fetch_list_parts(fetch_list)
        count = restore(keys=[fetch_list, FETCHER_ALIVE_PREFIX + fetcher_id, FETCH_LISTS, key])
        if count > 0:
            logger.warning("%d message(s) taken by a fetcher that is gone put back in %s", count, key)
            restored += count
    return restored
