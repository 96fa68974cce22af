"""Fast recovery of a dead worker's jobs: what Sidekiq Pro's super_fetch does for Ruby, on kombu's Redis.

With `acks_late`, a job stays in kombu's `unacked` hash from delivery until the worker acknowledges it. If
the worker's main process dies (SIGKILL, OOM killer, a lost host), kombu puts those jobs back only once
they are older than the visibility timeout, an hour in Kiln, which must exceed every time limit or a long
job still running would be handed out twice. Kiln gets them back within a minute instead:

- every worker process holds a lease: `kiln:worker-alive:<id>`, refreshed every DEAD_AFTER / 6 seconds
  with an expiry of DEAD_AFTER (KILN_WORKER_DEAD_AFTER_SECONDS, 30 s), where <id> is hostname, pid and a
  random part, so a worker restarted under the same name is a new lease;
- when the main process receives a job, it adds the message's delivery tag to `kiln:worker-owned:<id>`;
- every DEAD_AFTER / 3 seconds each worker looks for owned sets whose lease has expired. One found twice,
  a scan apart (so a live worker that lost Redis for a moment gets to renew first), is dead. The first
  worker to rename its set to `kiln:worker-recovering:<id>` (one script, only while the lease is still
  expired) recovers it: each of its tags still in `unacked` goes back to its queue in a WATCH/MULTI
  transaction (what kombu's `restore_by_tag` does, plus a check that the entry is still the same delivery,
  by its `unacked_index` time: a message keeps its tag when it is handed out again), and the set is
  deleted. A recovery that fails half-way (Redis gone) hands the set back for the next scan.

Three more leaks are closed the same way, by every worker at every scan:
- messages a consumer took from a queue but never recorded unacknowledged (Redis died in between, or the
  connection broke before the reply arrived) sit in that consumer's fetch list; once its fetcher lease
  expires they go back (jobs/transport.py, the reliable fetch);
- its own jobs it no longer knows (after a lost connection Celery forgets the prefetched ones, while
  Redis still holds them as unacknowledged) go back when seen twice in a row; the running ones finish,
  and their acknowledgement, which their closed channel cannot send, goes through the lease's connection
  (`WorkerLease.acknowledge`); one whose acknowledgement fails (Redis gone again) goes back the same way;
- jobs unacknowledged for three lease lifetimes that no lease owns (delivered by Redis just before a
  connection broke, never claimed) go back when seen twice in a row.
Every worker must run with this module (all of Kiln's do): a job held by a worker without a lease would
be taken for an unowned one.

A job whose worker died is therefore running again within DEAD_AFTER + 2 scans (about 50 s by default),
redelivered (at least once: the dead worker may have finished it without acknowledging). A worker that
stops gracefully deletes its lease after its last acknowledgement; kombu returns its prefetched jobs itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from typing import Any

from celery.signals import task_received, worker_init, worker_shutdown
from kombu.utils.json import loads

from jobs.transport import fetch_lists_recover

logger = logging.getLogger(__name__)

ALIVE_PREFIX = "kiln:worker-alive:"
OWNED_PREFIX = "kiln:worker-owned:"
SUSPECT_PREFIX = "kiln:worker-suspect:"
RECOVERING_PREFIX = "kiln:worker-recovering:"  # a dead worker's owned set, taken by the worker recovering it
# kombu's Redis transport: the hash of unacknowledged messages by delivery tag, and its index by time.
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


# KEYS: the lease's owned set, kombu's `unacked` hash and its index; ARGV: the delivery tag, and 1 when
# the claim is still to be written (Redis was away when the job arrived). 1 when acknowledged.
ACKNOWLEDGE_SCRIPT = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 or ARGV[2] == '1' then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    return 1
end
return 0
"""


class WorkerLease:
    def __init__(self, app: Any, hostname: str, dead_after: float) -> None:
        self.app = app
        self.id = f"{hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.dead_after = dead_after
        self.connection = app.connection_for_write()
        self.stopping = threading.Event()
        self.suspected: set[str] = set()
        self.unowned_suspected: set[str] = set()
        self.pending: set[str] = set()
        self.pending_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="kiln-worker-lease", daemon=True)

    @property
    def client(self) -> Any:
        # redis-py's client is thread-safe (a pool of connections); kombu's channel objects are not, and
        # only the client is used here.
        return self.connection.default_channel.client

    def start(self) -> None:
        # No broker I/O here: the worker may start before Redis answers; the thread renews once it does.
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        try:
            self.client.delete(OWNED_PREFIX + self.id, ALIVE_PREFIX + self.id)
        except Exception:
            logger.warning("could not delete worker lease %s", self.id, exc_info=True)
        self.connection.release()

    def renew(self) -> None:
        self.client.set(ALIVE_PREFIX + self.id, int(time.time()), ex=max(int(self.dead_after), 1))

    def claim(self, delivery_tag: str) -> None:
        # Renewed in the same round trip: a job is never owned by a lease that was not yet written.
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(OWNED_PREFIX + self.id, delivery_tag)
            pipe.set(ALIVE_PREFIX + self.id, int(time.time()), ex=max(int(self.dead_after), 1))
            pipe.execute()
        except Exception:
            # Redis went away between delivering the job and now: the thread writes the claim once it is back.
            with self.pending_lock:
                self.pending.add(delivery_tag)

    def acknowledge(self, delivery_tag: str) -> None:
        """Acknowledge a job on the lease's own connection, as kombu's Redis transport does on its channel's
        (delivery tags are the messages' own, not a connection's): a job that ran through a lost broker
        connection finished after its channel was closed, and is done once, not put back to run again.
        Only a job this lease still owns: one recovery put back meanwhile (this worker's, or another's
        that took this worker for dead) may be running elsewhere under the same tag, and that holder's
        entry in `unacked` must stay. Raises the connection error when Redis is away; recovery puts the
        job back later then."""
        with self.pending_lock:
            claim_unwritten = delivery_tag in self.pending
        self.client.eval(
            ACKNOWLEDGE_SCRIPT,
            3,
            OWNED_PREFIX + self.id,
            UNACKED,
            UNACKED_INDEX,
            delivery_tag,
            int(claim_unwritten),
        )
        with self.pending_lock:
            self.pending.discard(delivery_tag)

    def pending_claims_write(self) -> None:
        with self.pending_lock:
            tags, self.pending = self.pending, set()
        if tags:
            try:
                self.client.sadd(OWNED_PREFIX + self.id, *tags)
            except Exception:
                with self.pending_lock:
                    self.pending |= tags
                raise

    def _run(self) -> None:
        renew_every, scan_every = self.dead_after / 6, self.dead_after / 3
        last_scan = last_prune = time.monotonic()
        while True:
            try:
                self.renew()
                self.pending_claims_write()
                now = time.monotonic()
                if now - last_scan >= scan_every:
                    last_scan = now
                    dead_workers_recover(self.app, self.client, scan_every=scan_every, own_id=self.id)
                    # Messages taken from a queue by a consumer that died before recording them (jobs/transport.py).
                    fetch_lists_recover(self.client)
                    self.orphans_restore()
                    # Three lease lifetimes: far longer than a delivery takes to be claimed.
                    unowned_jobs_restore(
                        self.app,
                        self.client,
                        older_than=self.dead_after * 3,
                        suspected=self.unowned_suspected,
                    )
                if now - last_prune >= self.dead_after:
                    last_prune = now
                    owned_prune(self.client, OWNED_PREFIX + self.id)
            except Exception:  # the broker is down: the worker reconnects by itself; keep trying
                logger.warning("worker lease %s: broker unreachable", self.id, exc_info=True)
            if self.stopping.wait(renew_every):
                return

    def orphans_restore(self) -> int:
        """Put back this worker's own jobs that it no longer knows: after a lost broker connection Celery
        forgets the prefetched ones (and a running one whose acknowledgement failed is done but still
        unacknowledged), while Redis (with its append-only file) still holds them as unacknowledged, and
        would hand them out again only after the visibility timeout. A tag seen orphaned at two scans in a
        row is restored."""
        from celery.worker import state

        known = {
            request.message.delivery_tag
            for request in (
                *tuple(state.requests.values()),
                *tuple(state.active_requests),
                *tuple(state.reserved_requests),
                *tuple(state.scheduled_requests),
            )
            if getattr(request, "message", None) is not None
        }
        key = OWNED_PREFIX + self.id
        owned = [_text(tag) for tag in self.client.smembers(key)]
        orphans = unacked_deliveries(self.client, [tag for tag in owned if tag not in known])
        confirmed, self.suspected = orphans.keys() & self.suspected, orphans.keys() - self.suspected
        if not confirmed:
            return 0
        restored = tags_restore(self.app, {tag: orphans[tag] for tag in confirmed})
        self.client.srem(key, *confirmed)
        if restored:
            logger.warning(
                "worker %s: %d job(s) it had lost track of put back in their queues", self.id, restored
            )
        return restored


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def unacked_deliveries(client: Any, tags: list[str]) -> dict[str, float | None]:
    """The tags still in kombu's `unacked` hash, each with its `unacked_index` score: the time its delivery
    was recorded. A message keeps its delivery tag when it is delivered again, so the score is what tells
    the delivery a worker judged from the next one."""
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.hexists(UNACKED, tag)
        pipe.zscore(UNACKED_INDEX, tag)
    replies = pipe.execute()
    return {
        tag: score for tag, present, score in zip(tags, replies[::2], replies[1::2], strict=True) if present
    }


def tags_restore(app: Any, deliveries: dict[str, float | None]) -> int:
    """Put each job back in its queue, in one WATCH/MULTI transaction per job (kombu's `restore_by_tag`,
    plus a check): only if its `unacked` entry is still the delivery that was judged (same index score).
    Two workers may judge one tag at once; the first puts it back, a consumer takes it and records it again
    under the same tag, and the second must not put that new delivery back too: it would run twice at once.
    Returns how many were put back."""
    restored = 0
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as client:
            for tag, score in deliveries.items():

                def restore(pipe: Any, tag: str = tag, score: float | None = score) -> bool:
                    raw = pipe.hget(UNACKED, tag)
                    current = pipe.zscore(UNACKED_INDEX, tag)
                    pipe.multi()
                    if current != score:
                        return False  # acknowledged, put back, or delivered again meanwhile
                    channel.qos._remove_from_indices(tag, pipe)  # as kombu: also an index left alone
                    if raw is None:
                        return False
                    payload, exchange, routing_key = loads(_text(raw))
                    channel._do_restore_message(payload, exchange, routing_key, pipe)
                    return True

                restored += client.transaction(restore, UNACKED, UNACKED_INDEX, value_from_callable=True)
    return restored


def owned_prune(client: Any, key: str) -> None:
    """Forget tags already acknowledged (no longer in kombu's `unacked` hash)."""
    tags = [_text(tag) for tag in client.smembers(key)]
    gone = set(tags) - unacked_deliveries(client, tags).keys()
    if gone:
        client.srem(key, *gone)


def unowned_jobs_restore(app: Any, client: Any, *, older_than: float, suspected: set[str]) -> int:
    """Put back jobs unacknowledged for longer than `older_than` seconds that no lease owns: delivered by
    Redis just before a connection broke, they never reached a worker's hands (or its claim). A tag goes
    back once found unowned at two scans in a row (`suspected` carries the first sighting): a worker whose
    claim failed while Redis was away writes it only after Redis is back, and may be running the job."""
    old = {
        _text(tag): score
        for tag, score in client.zrangebyscore(
            UNACKED_INDEX, "-inf", time.time() - older_than, withscores=True
        )
    }
    if not old:
        suspected.clear()
        return 0
    owned: set[str] = set()
    for key in client.scan_iter(match=OWNED_PREFIX + "*", count=100):
        owned.update(_text(tag) for tag in client.smembers(key))
    unowned = {tag for tag in old if tag not in owned}
    confirmed = unowned & suspected
    suspected.clear()
    suspected.update(unowned - confirmed)
    if not confirmed:
        return 0
    restored = tags_restore(app, {tag: old[tag] for tag in sorted(confirmed)})
    if restored:
        logger.warning("%d unacknowledged job(s) no worker owns put back in their queues", restored)
    return restored


def dead_workers_recover(app: Any, client: Any, *, scan_every: float, own_id: str = "") -> int:
    """Put the unacknowledged jobs of every dead worker back in their queues; returns how many."""
    recovered = 0
    for key in client.scan_iter(match=OWNED_PREFIX + "*", count=100):
        worker_id = _text(key)[len(OWNED_PREFIX) :]
        if worker_id == own_id or client.exists(ALIVE_PREFIX + worker_id):
            client.delete(SUSPECT_PREFIX + worker_id)
            continue
        # First seen dead now: note when, and look again at the next scan.
        suspect_since = client.get(SUSPECT_PREFIX + worker_id)
        if suspect_since is None:
            client.set(SUSPECT_PREFIX + worker_id, time.time(), ex=int(scan_every * 10) + 1)
            continue
        if time.time() - float(suspect_since) < scan_every * 0.9:
            continue
        recovered += worker_jobs_restore(app, client, worker_id)
    return recovered


# A job that was in the hands of a worker that died this many times is not put back again: it is parked
# (taken out of Redis, its record failed) for an operator, as a poison pill that kills the whole worker
# would otherwise go round for ever. `jobs retry` publishes it again.
MAX_RESTORES = 3
RESTORED_PREFIX = "kiln:restored:"


# Take a dead worker's owned set KEYS[1] for recovery, as KEYS[2] (expiring after ARGV[1] s), if it still
# exists and its lease KEYS[3] is still expired: of two workers that judged it dead at once, one recovers it.
CLAIM_DEAD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then
    return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""


def worker_jobs_restore(app: Any, client: Any, worker_id: str) -> int:
    """Put back (or park) the jobs of a dead worker; returns how many. One worker does it per dead worker,
    so each job's death is counted once."""
    key, claimed = OWNED_PREFIX + worker_id, RECOVERING_PREFIX + worker_id
    if not client.eval(CLAIM_DEAD_SCRIPT, 3, key, claimed, ALIVE_PREFIX + worker_id, 24 * 3600):
        return 0
    try:
        unacked = unacked_deliveries(client, [_text(tag) for tag in client.smembers(claimed)])
        # A job whose worker died holding it MAX_RESTORES times already is parked, not put back again.
        parked = []
        for tag in unacked:
            restores = client.incr(RESTORED_PREFIX + tag)
            client.expire(RESTORED_PREFIX + tag, 7 * 24 * 3600)
            if restores > MAX_RESTORES and job_park(client, tag, restores - 1):
                parked.append(tag)
        restored = tags_restore(app, {tag: score for tag, score in unacked.items() if tag not in parked})
    except Exception:
        # Redis went away mid-way: hand the set back so a later scan recovers what is left.
        with contextlib.suppress(Exception):
            client.renamenx(claimed, key)
        raise
    client.delete(claimed, SUSPECT_PREFIX + worker_id)
    if unacked:
        logger.warning(
            "worker %s is dead: %d unacknowledged job(s) put back in their queues, %d parked",
            worker_id,
            restored,
            len(parked),
        )
    return restored + len(parked)


def job_park(client: Any, tag: str, deaths: int) -> bool:
    """Take the message out of `unacked` and record its job failed; False (put it back instead) when the
    record cannot be written: a job is never dropped without a trace."""
    import base64
    import json

    from django.utils import timezone

    from jobs.models import Job
    from jobs.recording import UNKNOWN_ATTEMPT, JobEvent, capped_arguments, job_events_write

    raw = client.hget(UNACKED, tag)
    if raw is None:
        return True  # restored or acknowledged meanwhile: nothing to park
    payload, _exchange, routing_key = json.loads(raw)
    headers = payload.get("headers") or {}
    try:  # Celery's message body: base64 of JSON [args, kwargs, embed]
        args, kwargs, _embed = json.loads(base64.b64decode(payload["body"]))
        args, kwargs, truncated = capped_arguments(args, kwargs)
    except (KeyError, ValueError, TypeError):
        args, kwargs, truncated = [], {}, True
    try:
        job_events_write(
            [
                JobEvent(
                    task_id=headers.get("id") or tag,
                    state=Job.State.FAILED,
                    attempt=UNKNOWN_ATTEMPT,
                    task_name=headers.get("task") or "",
                    queue=routing_key or "",
                    args=args,
                    kwargs=kwargs,
                    args_truncated=truncated,
                    finished_at=timezone.now(),
                    exception_type="WorkerLostError",
                    exception_message=f"parked: the worker holding it died {deaths} times",
                )
            ]
        )
    except Exception:
        logger.exception("could not record parked job %s; putting it back instead", tag)
        return False
    pipe = client.pipeline(transaction=True)
    pipe.hdel(UNACKED, tag)
    pipe.zrem(UNACKED_INDEX, tag)
    pipe.execute()
    logger.error(
        "job %s (%s) parked: the worker holding it died %d times",
        headers.get("id"),
        headers.get("task"),
        deaths,
    )
    return True


# The lease of this worker process (None outside a worker, or with recovery off).
LEASE: WorkerLease | None = None


@worker_init.connect
def lease_take(sender: Any = None, **kwargs: Any) -> None:
    """Before the pool starts and the first job arrives; held until every job of the worker has finished."""
    global LEASE
    from django.conf import settings

    if settings.KILN_WORKER_DEAD_AFTER_SECONDS and sender is not None:
        LEASE = WorkerLease(sender.app, sender.hostname, settings.KILN_WORKER_DEAD_AFTER_SECONDS)
        LEASE.start()


@worker_shutdown.connect
def lease_return(sender: Any = None, **kwargs: Any) -> None:
    # Sent after the warm shutdown finished every running job and acknowledged it.
    global LEASE
    if LEASE is not None:
        LEASE.stop()
        LEASE = None


@task_received.connect
def claim_received_job(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    if LEASE is not None and request is not None and request.message is not None:
        LEASE.claim(request.message.delivery_tag)
