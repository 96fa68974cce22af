"""broker/recovery.py against a real redis-server: a job that no worker's lease owns goes back to its queue
only once it is seen so at two scans a scan apart (its worker may write a failed claim only after Redis is
back, while it runs the job), and a dead worker's jobs only once it is seen dead so; the two scans may be
two different workers'."""

from __future__ import annotations

import json
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
    SUSPECT_PREFIX,
    UNACKED,
    UNOWNED_SUSPECTS,
    dead_workers_recover,
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


SCAN_EVERY = 10.0


def sightings_age(client: Any, key: str, seconds: float) -> None:
    """Move the first sightings of unowned jobs (`key`, a hash of JSON [first seen, score]) `seconds` back."""
    for tag, sighting in client.hgetall(key).items():
        first_seen, score = json.loads(sighting)
        client.hset(key, tag, json.dumps([first_seen - seconds, score]))


def test_a_job_no_lease_owns_goes_back_when_seen_so_at_two_scans(app: Celery, broker: RedisServer) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    assert set(client.hkeys(UNOWNED_SUSPECTS)) == {tag}
    assert client.hlen("unacked") == 1
    sightings_age(client, UNOWNED_SUSPECTS, SCAN_EVERY)  # the next scan, a scan interval later
    # Another worker's scan (its own client): the first sighting is in Redis, not in the first one's hands.
    assert unowned_jobs_restore(app, broker.client(), older_than=30, scan_every=SCAN_EVERY) == 1
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)
    assert not client.exists(UNOWNED_SUSPECTS)


def test_a_second_sighting_sooner_than_a_scan_apart_does_not_put_a_job_back(
    app: Celery, broker: RedisServer
) -> None:
    """Two workers' scans close together (a turn outlived, a worker asking late) are one sighting: the
    worker that claims the job once Redis is back must get a whole scan interval to do it."""
    client = broker.client()
    tag = unacknowledged_job(broker)
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    assert unowned_jobs_restore(app, broker.client(), older_than=30, scan_every=SCAN_EVERY) == 0
    assert set(client.hkeys(UNOWNED_SUSPECTS)) == {tag}, "still suspected, from its first sighting"
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)


def test_a_job_delivered_again_since_its_first_sighting_is_seen_anew(
    app: Celery, broker: RedisServer
) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    sightings_age(client, UNOWNED_SUSPECTS, SCAN_EVERY)
    client.zadd("unacked_index", {tag: time.time() - 50})  # a later delivery under the same tag
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)


def test_a_claim_written_between_the_two_scans_keeps_the_job_with_its_worker(
    app: Celery, broker: RedisServer
) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    client.sadd(OWNED_PREFIX + "high@host:1:abcd", tag)  # the worker's lease thread, once Redis is back
    sightings_age(client, UNOWNED_SUSPECTS, SCAN_EVERY)
    assert unowned_jobs_restore(app, client, older_than=30, scan_every=SCAN_EVERY) == 0
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)
    assert not client.exists(UNOWNED_SUSPECTS)


def test_a_dead_worker_is_recovered_once_seen_dead_a_scan_apart_by_any_worker(
    app: Celery, broker: RedisServer
) -> None:
    """Successive scans are made by whichever worker has the turn: the first sighting is kept in Redis,
    on Redis's clock, and a sighting sooner than a scan apart does not count as the second."""
    client = broker.client()
    tag = unacknowledged_job(broker)
    dead = "high@host:1:dead"
    client.sadd(OWNED_PREFIX + dead, tag)
    for scanner in ("high@a:1:aaaa", "high@b:2:bbbb"):  # two workers' scans close together
        assert dead_workers_recover(app, broker.client(), scan_every=SCAN_EVERY, own_id=scanner) == 0
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)
    suspected_at = float(client.get(SUSPECT_PREFIX + dead))
    client.set(SUSPECT_PREFIX + dead, suspected_at - SCAN_EVERY)  # the next turn, a scan later
    assert dead_workers_recover(app, broker.client(), scan_every=SCAN_EVERY, own_id="high@c:3:cccc") == 1
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)
    assert not client.exists(SUSPECT_PREFIX + dead, OWNED_PREFIX + dead)


def test_a_worker_whose_lease_comes_back_is_suspected_no_more(app: Celery, broker: RedisServer) -> None:
    client = broker.client()
    worker = "high@host:1:back"
    client.sadd(OWNED_PREFIX + worker, "some-tag")
    assert dead_workers_recover(app, client, scan_every=SCAN_EVERY) == 0
    assert client.exists(SUSPECT_PREFIX + worker)
    client.set(ALIVE_PREFIX + worker, 1)  # it lost Redis for a moment, and renewed
    assert dead_workers_recover(app, client, scan_every=SCAN_EVERY) == 0
    assert not client.exists(SUSPECT_PREFIX + worker)
    assert client.exists(OWNED_PREFIX + worker)


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
