"""broker/recovery.py against a real redis-server: a job that no worker's lease owns goes back to its queue
only once it is seen so at two scans in a row (its worker may write a failed claim only after Redis is
back, while it runs the job)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery

from broker import transport
from broker.recovery import (
    ALIVE_PREFIX,
    OWNED_PREFIX,
    RECOVERING_PREFIX,
    RESTORED_PREFIX,
    UNACKED,
    job_park,
    tags_restore,
    unowned_jobs_restore,
    worker_jobs_restore,
)
from broker.signals import ParkedJob, job_parked
from tests.broker.test_transport import HIGH, connection, delivered, publish
from tests.support.processes import RedisServer


def close_as_a_lost_worker_connection(conn: Any) -> None:
    """Close as a Kiln worker closes a connection it lost: what it delivered stays in `unacked`."""
    transport.connection_lease_attach(conn, SimpleNamespace(returned=False))
    transport.connection_mark_lost(conn)
    conn.close()


def unacknowledged_job(broker: RedisServer) -> str:
    """A job delivered to a worker that then lost its connection: in `unacked`, 100 s old, owned by nobody."""
    publish(broker.url, {"n": 1})
    conn, message = delivered(broker.url)
    close_as_a_lost_worker_connection(conn)
    tag = message.delivery_tag
    broker.client().zadd("unacked_index", {tag: time.time() - 100})
    return tag


def test_a_job_no_lease_owns_goes_back_when_seen_so_at_two_scans(app: Celery, broker: RedisServer) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    suspected: set[str] = set()
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    assert suspected == {tag}
    assert client.hlen("unacked") == 1
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 1
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)


def test_a_claim_written_between_the_two_scans_keeps_the_job_with_its_worker(
    app: Celery, broker: RedisServer
) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    suspected: set[str] = set()
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    client.sadd(OWNED_PREFIX + "high@host:1:abcd", tag)  # the worker's lease thread, once Redis is back
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)
    assert suspected == set()


def test_a_job_put_back_by_one_worker_and_taken_again_is_not_put_back_by_another(
    app: Celery, broker: RedisServer
) -> None:
    """Two workers judge one unowned job at the same scan. The first puts it back and a consumer takes it
    again under the same delivery tag; the second, acting on what it read before, must leave that new
    delivery alone (the job would otherwise run twice at once: seen in test_redis_restart)."""
    client = broker.client()
    tag = unacknowledged_job(broker)
    judged = client.zscore("unacked_index", tag)
    assert tags_restore(app, {tag: judged}) == 1  # the first worker
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)

    conn, message = delivered(broker.url)  # a consumer takes it again: same tag, a new delivery
    try:
        assert message.delivery_tag == tag
        assert client.zscore("unacked_index", tag) != judged
        assert tags_restore(app, {tag: judged}) == 0  # the second worker, with what it read before
        assert (client.llen("high"), client.hlen("unacked")) == (0, 1)
    finally:
        close_as_a_lost_worker_connection(conn)


def test_one_worker_recovers_a_dead_workers_jobs_and_counts_their_death_once(
    app: Celery, broker: RedisServer
) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    dead = "high@host:1:dead"
    client.sadd(OWNED_PREFIX + dead, tag)

    client.set(ALIVE_PREFIX + dead, 1)  # its lease came back since it was judged dead: not recovered
    assert worker_jobs_restore(app, client, dead) == 0
    client.delete(ALIVE_PREFIX + dead)
    # Another worker is recovering it right now: it holds the set under its recovering name.
    client.rename(OWNED_PREFIX + dead, RECOVERING_PREFIX + dead)
    assert worker_jobs_restore(app, client, dead) == 0
    assert client.get(RESTORED_PREFIX + tag) is None, "a death counted by a worker that did not recover it"
    client.rename(RECOVERING_PREFIX + dead, OWNED_PREFIX + dead)

    assert worker_jobs_restore(app, client, dead) == 1
    assert client.get(RESTORED_PREFIX + tag) == "1"
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)
    assert not client.exists(OWNED_PREFIX + dead, RECOVERING_PREFIX + dead)


@pytest.fixture
def app(app_broker: RedisServer) -> Celery:
    """Kiln's Celery app, publishing to the test's Redis (recovery puts jobs back through it); its cached
    connections are dropped after the test, so no later test in this process publishes there."""
    from config.celery import app

    return app


@pytest.fixture(autouse=True)
def only_this_tests_receivers() -> Iterator[None]:
    """The jobs app's receiver of job_parked (connected in this process by Django) writes to a database
    these tests do not have: the broker layer is tested on its own."""
    from jobs.receivers import record_parked

    job_parked.disconnect(record_parked)
    yield
    job_parked.connect(record_parked, weak=False)


@pytest.fixture
def parked_receiver() -> Iterator[list[Any]]:
    """What a receiver of job_parked was sent; an Exception in the list is raised by it instead."""
    sent: list[Any] = []

    def receiver(sender: Any = None, job: ParkedJob | None = None, **kwargs: Any) -> bool:
        if sent and isinstance(sent[0], Exception):
            raise sent[0]
        sent.append(job)
        return True

    job_parked.connect(receiver, weak=False)
    yield sent
    job_parked.disconnect(receiver)


def test_a_job_parked_is_handed_to_the_receivers_then_taken_out_of_redis(
    broker: RedisServer, parked_receiver: list[Any]
) -> None:
    client = broker.client()
    with connection(broker.url) as conn, conn.Producer() as producer:
        # A Celery task message: body [args, kwargs, embed], the task's id and name in the headers.
        producer.publish(
            [[7], {"force": True}, {}],
            exchange=HIGH.exchange,
            routing_key=HIGH.routing_key,
            declare=[HIGH],
            headers={"id": "task-7", "task": "thumbnails.tasks.rendition_generate"},
        )
    conn, message = delivered(broker.url)
    close_as_a_lost_worker_connection(conn)
    tag = message.delivery_tag
    assert job_park(client, tag, deaths=3) is True
    (job,) = parked_receiver
    assert job == ParkedJob(
        task_id="task-7",
        task_name="thumbnails.tasks.rendition_generate",
        queue="high",
        args=[7],
        kwargs={"force": True},
        deaths=3,
    )
    assert not client.hexists(UNACKED, tag)
    assert client.zscore("unacked_index", tag) is None


def test_a_job_nobody_records_is_not_parked(broker: RedisServer) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    assert job_park(client, tag, deaths=3) is False, "never dropped without a trace"
    assert client.hexists(UNACKED, tag)


def test_a_job_whose_record_fails_is_not_parked(broker: RedisServer, parked_receiver: list[Any]) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    parked_receiver.append(RuntimeError("database down"))
    assert job_park(client, tag, deaths=3) is False
    assert client.hexists(UNACKED, tag)
