"""Kiln's Redis transport (broker/transport.py) against a real redis-server: the reliable fetch keeps a message in
Redis from the moment it is taken until it is recorded unacknowledged, and recovery puts back what a gone
consumer took."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import warnings
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

from broker import transport
from broker.transport import FETCH_LISTS, MALFORMED, fetch_lists_recover
from tests.support.processes import RedisServer, start_redis, wait_for

HIGH = Queue("high", Exchange("high"), routing_key="high")
DEFAULT = Queue("default", Exchange("default"), routing_key="default")


def connection(url: str, *, dead_after: float = 3, **options: Any) -> Connection:
    return Connection(
        url, transport_options={"priority_steps": [0], "kiln_dead_after": dead_after, **options}
    )


def publish(url: str, body: dict, queue: Queue = HIGH) -> None:
    with connection(url) as conn, conn.Producer() as producer:
        producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])


def delivered(url: str) -> tuple[Connection, Any]:
    """A connection consuming `high`, and the one message it was handed (not acknowledged)."""
    conn = connection(url)
    consumed: list = []
    conn.Consumer([HIGH], callbacks=[lambda body, message: consumed.append(message)]).consume()
    conn.drain_events(timeout=3)
    assert len(consumed) == 1
    return conn, consumed[0]


def fetch_lists(client) -> dict[str, list[str]]:
    return {key: client.lrange(key, 0, -1) for key in client.scan_iter(match="kiln:fetching:*")}


@pytest.fixture
def consumed() -> list:
    return []


def drain(
    conn: Connection, queues: list[Queue], consumed: list, *, no_ack: bool = False, timeout: float = 3
) -> None:
    def on_message(body: dict, message: Any) -> None:
        consumed.append((body, message))

    with conn.Consumer(queues, callbacks=[on_message], accept=["json"], no_ack=no_ack):
        conn.drain_events(timeout=timeout)


def test_it_is_kombus_redis_scheme_that_resolves_to_kilns_transport(broker: RedisServer) -> None:
    import config.celery  # noqa: F401 - registers the transport

    for url in (broker.url, "redis+socket:///tmp/kiln.sock", "rediss://127.0.0.1:6380/0"):
        assert Connection(url).transport_cls in ("redis", "rediss")
        assert Connection(url).transport.__class__ is transport.Transport


def test_a_delivered_message_is_unacknowledged_and_in_no_fetch_list(
    broker: RedisServer, consumed: list
) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})
    with connection(broker.url) as conn:
        drain(conn, [HIGH], consumed)
        assert [body for body, _ in consumed] == [{"n": 1}]
        assert client.llen("high") == 0
        assert client.hlen("unacked") == client.zcard("unacked_index") == 1
        assert fetch_lists(client) == {}
        consumed[0][1].ack()
    assert client.hlen("unacked") == 0


def test_a_message_is_recorded_by_the_scripts_sha_even_after_redis_forgot_the_script(
    broker: RedisServer, consumed: list
) -> None:
    """The record script goes by its SHA1 (EVALSHA), not its text at every job; a restarted Redis has an
    empty script cache, and the channel that registered the script records the next message all the same."""
    client = broker.client()
    client.config_resetstat()
    publish(broker.url, {"n": 1})
    with connection(broker.url) as conn:
        drain(conn, [HIGH], consumed)
        client.script_flush()  # as a restart leaves it
        publish(broker.url, {"n": 2})
        drain(conn, [HIGH], consumed)
        assert [body for body, _ in consumed] == [{"n": 1}, {"n": 2}]
        assert client.hlen("unacked") == 2
        for _body, message in consumed:
            message.ack()
    commands = client.info("commandstats")
    assert "cmdstat_eval" not in commands, "a script's text sent with EVAL"
    assert commands["cmdstat_evalsha"]["calls"] >= 2


@pytest.mark.parametrize("reliable", [True, False], ids=["kiln-fetch", "kombu-brpop"])
def test_a_message_taken_when_redis_is_killed_before_it_is_recorded(tmp_path: Path, reliable: bool) -> None:
    """Redis SIGKILLed (with its append-only file) in the exact window between taking a message and recording
    it unacknowledged: Kiln's fetch keeps it and recovery puts it back; kombu's BRPOP loses it."""
    directory = tmp_path / "redis"
    server = start_redis(directory, persistent=True)
    try:
        publish(server.url, {"n": "survivor"})
        record = transport.QoS.append

        def redis_dies_first(qos: transport.QoS, message: Any, delivery_tag: str) -> None:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
            record(qos, message, delivery_tag)

        conn = connection(server.url, dead_after=3 if reliable else 0)
        consumed: list = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(transport.QoS, "append", redis_dies_first)
            with pytest.raises(conn.connection_errors):
                drain(conn, [HIGH], consumed)
        conn.collect()
        assert consumed == [], "the message never reached the consumer"

        server = start_redis(directory, port=server.port, persistent=True)
        client = server.client()
        assert client.llen("high") == 0
        assert client.hlen("unacked") == 0
        if not reliable:
            assert fetch_lists(client) == {}, "kombu's BRPOP left it nowhere: lost"
            return
        assert [len(items) for items in fetch_lists(client).values()] == [1]
        # Once the taker's lease has expired (3 s here), recovery puts the message back in its queue.
        wait_for(
            lambda: fetch_lists_recover(client) == 1, timeout=10, what="recovery to put the message back"
        )
        assert client.llen("high") == 1
        assert fetch_lists(client) == {}
        with connection(server.url) as conn:
            drain(conn, [HIGH], consumed)
            assert [body for body, _ in consumed] == [{"n": "survivor"}]
            consumed[0][1].ack()
        assert client.hlen("unacked") == 0
        assert client.llen("high") == 0
    finally:
        server.stop()


def test_recovery_leaves_a_live_consumers_fetch_list_alone(broker: RedisServer) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})
    with connection(broker.url, dead_after=30) as conn:
        channel = conn.default_channel
        channel._fetcher_refresh(["high"], 1)
        client.lmove("high", channel._fetch_list("high"), "RIGHT", "LEFT")  # as its BLMOVE does
        assert fetch_lists_recover(client) == 0
        assert client.llen(channel._fetch_list("high")) == 1
        client.delete(transport.FETCHER_ALIVE_PREFIX + channel.fetcher_id)  # its lease runs out
        assert fetch_lists_recover(client) == 1
        assert client.llen("high") == 1
        assert client.smembers(FETCH_LISTS) == set()


def test_a_late_delivery_of_a_message_recovery_put_back_is_dropped(
    broker: RedisServer, consumed: list
) -> None:
    """A consumer frozen between taking and recording a message for longer than its lease: recovery puts the
    message back, so the frozen consumer must not run it too."""
    client = broker.client()
    publish(broker.url, {"n": 1})
    record = transport.QoS.append

    frozen: list[str] = []

    def frozen_past_its_lease(qos: transport.QoS, message: Any, delivery_tag: str) -> None:
        if not frozen:  # once: the put-back message is then fetched as any other
            frozen.append(delivery_tag)
            client.delete(transport.FETCHER_ALIVE_PREFIX + qos.channel.fetcher_id)
            assert fetch_lists_recover(client) == 1
        record(qos, message, delivery_tag)

    with connection(broker.url) as conn:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(transport.QoS, "append", frozen_past_its_lease)
            drain(
                conn, [HIGH], consumed
            )  # the late delivery is dropped; the put-back message is fetched again
        assert len(frozen) == 1
        assert [body for body, _ in consumed] == [{"n": 1}]
        assert client.hlen("unacked") == 1
        assert client.llen("high") == 0
        with pytest.raises(TimeoutError):  # and only once
            drain(conn, [HIGH], consumed, timeout=1)


def test_a_consumer_of_two_queues_takes_from_both(broker: RedisServer, consumed: list) -> None:
    client = broker.client()
    publish(broker.url, {"n": "default-1"}, DEFAULT)
    with connection(broker.url) as conn:
        # Queued before: the non-blocking script takes it whichever queue it is in.
        drain(conn, [HIGH, DEFAULT], consumed)
        # Idle first: the consumer waits on one queue at a time, at most MULTI_KEY_WAIT on each.
        with conn.Consumer(
            [HIGH, DEFAULT], callbacks=[lambda body, message: consumed.append((body, message))]
        ):
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.6)
            for queue in (DEFAULT, HIGH):
                publish(broker.url, {"n": f"{queue.name}-2"}, queue)
                started = time.monotonic()
                while len(consumed) < (2 if queue is DEFAULT else 3):
                    conn.drain_events(timeout=3)
                assert time.monotonic() - started < 2
        assert client.hlen("unacked") == 3  # (closing the connection puts unacknowledged ones back)
    assert [body["n"] for body, _ in consumed] == ["default-1", "default-2", "high-2"]
    assert fetch_lists(client) == {}


def test_a_no_ack_consumer_leaves_nothing_behind(broker: RedisServer, consumed: list) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})
    with connection(broker.url) as conn:
        drain(conn, [HIGH], consumed, no_ack=True)
    assert [body for body, _ in consumed] == [{"n": 1}]
    assert client.hlen("unacked") == 0
    assert fetch_lists(client) == {}
    assert client.llen("high") == 0


@pytest.mark.parametrize("no_ack", [False, True])
def test_basic_get_fetches_the_same_reliable_way(broker: RedisServer, no_ack: bool) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})
    with connection(broker.url) as conn:
        message = HIGH(conn.default_channel).get(no_ack=no_ack)
        assert message is not None
        assert message.payload == {"n": 1}
        assert client.hlen("unacked") == (0 if no_ack else 1)
        assert fetch_lists(client) == {}
        assert client.llen("high") == 0
        assert HIGH(conn.default_channel).get() is None


def test_a_message_that_is_not_kombus_is_moved_aside_not_fetched_for_ever(
    broker: RedisServer, consumed: list
) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})  # declares the queue's binding
    client.rpush("high", "this is not JSON")  # the consuming end: taken first
    with (
        connection(broker.url) as conn,
        conn.Consumer([HIGH], callbacks=[lambda body, message: consumed.append((body, message))]),
    ):
        deadline = time.monotonic() + 5
        while not consumed and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1)
    assert [body for body, _ in consumed] == [{"n": 1}]
    assert client.lrange(MALFORMED, 0, -1) == ["this is not JSON"]
    assert fetch_lists(client) == {}


def test_a_fetch_cut_off_by_a_lost_connection_leaves_its_message_to_recovery(broker: RedisServer) -> None:
    client = broker.client()
    publish(broker.url, {"n": 1})
    with connection(broker.url) as conn:
        channel = conn.default_channel
        channel.basic_consume("high", False, lambda message: None, "tag")
        conn.transport.cycle.on_poll_start()  # registers the channel's connection and sends its BLMOVE
        first_fetcher = channel.fetcher_id
        wait_for(lambda: client.llen("high") == 0, timeout=5, what="the BLMOVE to take the message")
        channel.client.connection.disconnect()  # the reply is never read
        assert channel.fetcher_id != first_fetcher, "a new identity: the old one's list is left to recovery"
    assert client.hlen("unacked") == 0
    wait_for(lambda: fetch_lists_recover(client) == 1, timeout=10, what="recovery to put the message back")
    assert client.llen("high") == 1


def kombu_payload(body: str, **properties: Any) -> dict:
    return {
        "body": body,
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": "poison-1",
            "delivery_info": {"exchange": "high", "routing_key": "high"},
            **properties,
        },
    }


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(json.dumps(kombu_payload("!!! not base64")), id="undecodable-body"),
        pytest.param(json.dumps(kombu_payload("e30=", delivery_info=None)), id="no-delivery-info"),
        pytest.param('{"properties": ' + "[" * 100_000 + "]" * 100_000 + "}", id="nested-too-deep"),
    ],
)
def test_a_message_that_cannot_be_delivered_is_moved_aside_and_the_consumer_goes_on(
    broker: RedisServer, consumed: list, poison: str
) -> None:
    """kombu raises on such a message (and loses it); a reliable fetch must not hand it to worker after
    worker through recovery."""
    client = broker.client()
    publish(broker.url, {"n": "good"})
    client.rpush("high", poison)  # the consuming end: taken first
    with connection(broker.url) as conn:
        drain(conn, [HIGH], consumed)
        assert [body for body, _ in consumed] == [{"n": "good"}]
        assert client.hlen("unacked") == 1
    assert client.lrange(MALFORMED, 0, -1) == [poison]
    assert fetch_lists(client) == {}


def test_a_message_taken_for_a_consumer_cancelled_meanwhile_goes_back_to_its_queue(
    broker: RedisServer,
) -> None:
    client = broker.client()
    with connection(broker.url) as conn:
        channel = conn.default_channel
        HIGH(channel).declare()
        channel.basic_consume("high", False, lambda message: pytest.fail("delivered after cancel"), "tag")
        conn.transport.cycle.on_poll_start()  # its BLMOVE waits
        publish(broker.url, {"n": 1})
        wait_for(lambda: client.llen("high") == 0, timeout=5, what="the BLMOVE to take the message")
        channel.basic_cancel("tag")  # a paused queue
        with pytest.raises(Empty):
            channel._brpop_read()  # the reply arrives for nobody
    assert client.llen("high") == 1
    assert client.hlen("unacked") == 0
    assert fetch_lists(client) == {}


def test_a_consumer_keeps_taking_jobs_from_a_full_redis(broker: RedisServer, consumed: list) -> None:
    """maxmemory reached with noeviction: Redis refuses BLMOVE (and kombu's record of a BRPOPed message, which
    it then loses); the fetch and record scripts pop before they push, which Redis allows. (kombu's MULTI
    transactions, its acknowledgement among them, are refused until Redis has room again.)"""
    client = broker.client()
    for n in range(3):
        publish(broker.url, {"n": n})
    with (
        connection(broker.url) as conn,
        conn.Consumer([HIGH], callbacks=[lambda body, message: consumed.append((body, message))]),
    ):
        client.config_set("maxmemory-policy", "noeviction")
        # Below what Redis uses, whatever it frees meanwhile: every write that needs memory is refused.
        client.config_set("maxmemory", 1)
        try:
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                client.set("kiln:test-full", "x" * 1000)
            deadline = time.monotonic() + 10
            while len(consumed) < 3 and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
            assert sorted(body["n"] for body, _ in consumed) == [0, 1, 2]
            assert client.hlen("unacked") == 3
            assert fetch_lists(client) == {}
            assert client.llen("high") == 0
        finally:
            client.config_set("maxmemory", 0)


@pytest.mark.parametrize("dead_after", [3, 0], ids=["reliable-fetch", "fetch-off"])
def test_a_consumer_whose_redis_died_mid_fetch_closes_the_way_celery_closes_it(
    tmp_path: Path, dead_after: float
) -> None:
    """Celery, on a lost broker connection (Consumer.on_connection_error_after_connected), collects the
    connection and then closes it, ignoring connection errors only. With a fetch outstanding and a job
    delivered but not acknowledged, kombu 5.7's channel raised AttributeError from that second close (the
    transport's client was already gone) and the worker exited with "Unrecoverable error". It must close
    quietly, so the worker reconnects, and leave the job in Redis."""
    server = start_redis(tmp_path / "redis", persistent=True)
    try:
        publish(server.url, {"n": 1})
        conn = connection(server.url, dead_after=dead_after)
        consumed: list = []
        consumer = conn.Consumer([HIGH], callbacks=[lambda body, message: consumed.append(message)])
        consumer.consume()
        # A second channel listening on a broadcast queue, like the worker's remote-control (pidbox) one.
        broadcast = Queue("worker.pidbox", Exchange("control", type="fanout"), auto_delete=True)
        conn.Consumer([broadcast], channel=conn.channel(), no_ack=True).consume()
        deadline = time.monotonic() + 5
        while not consumed and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.2)
        assert len(consumed) == 1, "a job delivered, not acknowledged"
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.2)
        assert conn.default_channel._in_poll, "a fetch outstanding on the empty queue"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)

        with contextlib.suppress(Exception):  # as Celery does
            conn.collect(socket_timeout=1)
        ignore_errors(conn, conn.close)  # as Celery does: only connection and channel errors are ignored
        with pytest.raises(redis.ConnectionError):  # a job finished meanwhile, acknowledged (Celery logs it)
            consumed[0].ack()

        server = start_redis(tmp_path / "redis", port=server.port, persistent=True)
        assert server.client().hlen("unacked") == 1, "the job is still in Redis, for recovery to put back"
    finally:
        server.stop()


def worker_lease(url: str) -> Any:
    """A Kiln worker's lease on the Redis at `url` (its renewing thread not started)."""
    from celery import Celery

    from broker.lease import WorkerLease

    return WorkerLease(Celery("lease-test", broker=url), "high@test", dead_after=30)


@pytest.mark.parametrize(
    ("in_a_running_worker", "claim_written"),
    [(True, True), (True, False), (False, True)],
    ids=["worker-reconnecting", "worker-reconnecting-claim-unwritten", "worker-stopping"],
)
def test_a_channel_closed_in_a_worker_that_lost_its_connection_leaves_its_jobs_unacknowledged(
    broker: RedisServer, in_a_running_worker: bool, claim_written: bool
) -> None:
    """kombu puts what a closing channel delivered back in its queue, running jobs included. In a worker
    handling a lost connection (broker/worker.py's Consumer) they stay in `unacked` instead, and a job that
    finishes afterwards is acknowledged through the worker's lease, once: not put back to run again. A
    stopping worker's, or any other client's, go back as kombu does. A claim the lease has not written yet
    (Redis was away when the job arrived) counts as owned."""
    from broker import recovery

    lease = worker_lease(broker.url)
    client = broker.client()
    publish(broker.url, {"n": 1})
    conn, message = delivered(broker.url)
    if in_a_running_worker:
        transport.connection_lease_attach(conn, lease)
    if claim_written:
        lease.claim(message.delivery_tag)
    else:
        lease.pending.add(message.delivery_tag)
    if in_a_running_worker:
        transport.connection_mark_lost(conn)  # as Kiln's consumer does before Celery closes it
    conn.close()
    try:
        if in_a_running_worker:
            assert (client.llen("high"), client.hlen("unacked")) == (0, 1), "left to the worker"
            message.ack()  # the job, finished after the close
            assert (client.llen("high"), client.hlen("unacked"), client.zcard("unacked_index")) == (0, 0, 0)
            assert client.smembers(recovery.OWNED_PREFIX + lease.id) == set(), "its lease no longer owns it"
            assert lease.pending == set()
        else:
            assert (client.llen("high"), client.hlen("unacked")) == (1, 0), "kombu's restore at close"
    finally:
        lease.connection.release()


def test_only_a_job_its_lease_still_owns_is_acknowledged_through_it(broker: RedisServer) -> None:
    """Recovery may put a job back while it still runs through a lost connection (another worker taking
    this one for dead); handed out again, it keeps its delivery tag. The first run's late acknowledgement
    must leave the new holder's entry in `unacked`."""
    from broker import recovery

    lease = worker_lease(broker.url)
    client = broker.client()
    publish(broker.url, {"n": 1})
    first, message = delivered(broker.url)
    transport.connection_lease_attach(first, lease)
    tag = message.delivery_tag
    lease.claim(tag)
    transport.connection_mark_lost(first)
    first.close()
    try:
        # Recovery's put-back: restore_by_tag, and the tag leaves the lease's owned set.
        with connection(broker.url) as conn:
            conn.default_channel.qos.restore_by_tag(tag)
        client.srem(recovery.OWNED_PREFIX + lease.id, tag)
        second, again = delivered(broker.url)
        assert again.delivery_tag == tag, "kombu hands it out again under the same tag"

        message.ack()  # the first run, finished late
        assert client.hlen("unacked") == 1, "the second holder's entry stays"
        again.ack()
        assert client.hlen("unacked") == 0
        second.close()
    finally:
        lease.connection.release()


def test_an_acknowledgement_failing_because_redis_is_away_leaves_the_job_to_recovery(tmp_path: Path) -> None:
    """The lease's acknowledgement of a job that ran through a lost connection fails like any ack while
    Redis is away (Celery logs it); the job is still in `unacked` when Redis is back, owned by its worker,
    whose recovery puts it back."""
    from broker import recovery

    server = start_redis(tmp_path / "redis", persistent=True)
    lease = worker_lease(server.url)
    try:
        publish(server.url, {"n": 1})
        conn, message = delivered(server.url)
        transport.connection_lease_attach(conn, lease)
        lease.claim(message.delivery_tag)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        transport.connection_mark_lost(conn)
        ignore_errors(conn, conn.close)
        with pytest.raises(redis.ConnectionError):
            message.ack()

        server = start_redis(tmp_path / "redis", port=server.port, persistent=True)
        client = server.client()
        assert client.hlen("unacked") == 1
        assert client.smembers(recovery.OWNED_PREFIX + lease.id) == {message.delivery_tag}
    finally:
        lease.connection.release()
        server.stop()


def test_kilns_consumer_marks_a_lost_connection_before_celery_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.exceptions import CPendingDeprecationWarning
    from celery.worker.consumer import Consumer as CeleryConsumer
    from celery.worker.consumer.consumer import CANCEL_TASKS_BY_DEFAULT

    from broker.worker import Consumer

    seen: list[bool] = []

    def celerys(self: Any, exc: Exception) -> None:
        seen.append(getattr(self.connection, transport.LOST_ATTRIBUTE, False))
        warnings.warn(CANCEL_TASKS_BY_DEFAULT, CPendingDeprecationWarning, stacklevel=2)

    monkeypatch.setattr(CeleryConsumer, "on_connection_error_after_connected", celerys)
    consumer = object.__new__(Consumer)
    consumer.connection = type("Connection", (), {})()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")  # as Celery's worker logging set-up does
        Consumer.on_connection_error_after_connected(consumer, ConnectionError("lost"))
    assert seen == [True]
    # Only Celery's warning counts: whatever else this process imports for the first time here may warn too
    # (the files of the suite run in different orders and processes).
    cancel_default = [warning for warning in warned if str(warning.message) == CANCEL_TASKS_BY_DEFAULT]
    assert cancel_default == [], (
        "Celery's warning about the cancel default is not logged at every lost connection"
    )
    with warnings.catch_warnings(record=True) as unfiltered:  # without Kiln's consumer, the same call warns
        warnings.simplefilter("always")
        celerys(consumer, ConnectionError("lost"))
    assert [str(warning.message) for warning in unfiltered] == [CANCEL_TASKS_BY_DEFAULT]


def test_a_connection_only_counts_as_a_lost_workers_once_both_marks_are_set(broker: RedisServer) -> None:
    """A publisher's or Flower's connection has no lease: kombu's behaviour, whatever happens to it."""
    lease = worker_lease(broker.url)
    try:
        for attach, lost, expected in ((False, True, False), (True, False, False), (True, True, True)):
            with connection(broker.url) as conn:
                if attach:
                    transport.connection_lease_attach(conn, lease)
                if lost:
                    transport.connection_mark_lost(conn)
                assert transport._closing_a_lost_worker_connection(conn.default_channel) is expected
        lease.returned = True
        with connection(broker.url) as conn:
            transport.connection_lease_attach(conn, lease)
            transport.connection_mark_lost(conn)
            assert transport._closing_a_lost_worker_connection(conn.default_channel) is False, (
                "a lease given back acknowledges nothing"
            )
    finally:
        lease.connection.release()
