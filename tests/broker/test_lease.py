"""broker/lease.py's scan against a real redis-server: however many workers, one of them per scan interval
reads the whole installation (dead workers, fetch lists, unowned jobs), while every one of them still
looks after its own jobs; and a dead worker first seen by one worker's turn is recovered by another's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from broker.lease import WorkerLease
from broker.recovery import OWNED_PREFIX, SCAN_TURN
from broker.transport import FETCH_LISTS, FETCHER_ALIVE_PREFIX, FETCHING_PREFIX
from tests.broker.test_recovery import unacknowledged_job
from tests.support.processes import RedisServer, start_redis, wait_for

WORKERS = 5
# A short interval keeps the test quick: it waits for each turn to expire, 0.9 of an interval.
SCAN_EVERY = 1.0


def worker_leases(url: str, app: Celery | None = None) -> list[WorkerLease]:
    """Leases of WORKERS live workers on the Redis at `url`, renewed once (their threads not started)."""
    app = app or Celery("lease-test", broker=url)
    leases = [WorkerLease(app, f"high@host-{n}", dead_after=SCAN_EVERY * 3) for n in range(WORKERS)]
    for lease in leases:
        lease.renew()
        lease.client.sadd(OWNED_PREFIX + lease.id, f"job-of-{lease.id}")
    return leases


def commands_run(client: Any) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in client.info("commandstats").items()
        if name.startswith("cmdstat_")
    }


def turn_expired(client: Any) -> None:
    wait_for(lambda: not client.exists(SCAN_TURN), timeout=10, what="the scan turn to expire")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own: its command counts are this test's alone."""
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def test_one_of_several_workers_scans_the_installation_per_interval(private_redis: RedisServer) -> None:
    client = private_redis.client()
    leases = worker_leases(private_redis.url)
    # Each worker's consumer, fetching: a live fetcher and its fetch list.
    for _lease in leases:
        fetcher_id = uuid.uuid4().hex
        client.set(FETCHER_ALIVE_PREFIX + fetcher_id, "host", ex=3600)
        client.sadd(FETCH_LISTS, f"{FETCHING_PREFIX}{fetcher_id}:high")
    try:
        for lease in leases:  # a first round: redis-py loads the fetch lists' script
            lease.scan(SCAN_EVERY)
        turn_expired(client)
        before = commands_run(client)
        turns = []
        for _interval in range(3):
            turns.append([lease.scan(SCAN_EVERY) for lease in leases])
            assert client.get(SCAN_TURN) == leases[turns[-1].index(True)].id, "the turn names its holder"
            assert 0 < client.pttl(SCAN_TURN) <= SCAN_EVERY * 900, "held for 0.9 of an interval"
            turn_expired(client)
        ran = {name: calls - before.get(name, 0) for name, calls in commands_run(client).items()}
    finally:
        for lease in leases:
            lease.connection.release()

    assert [interval.count(True) for interval in turns] == [1, 1, 1]
    assert ran.get("set", 0) == 3 * WORKERS, "every worker asked for the turn at every interval"
    # The installation's scans, once an interval: one SCAN for the owned sets (dead_workers_recover),
    # one script per fetch list (fetch_lists_recover), one look for old unacknowledged jobs.
    assert ran.get("scan", 0) == 3
    assert ran.get("evalsha", 0) == 3 * WORKERS
    assert ran.get("zrangebyscore", 0) == 3
    # Every worker's own part: its owned set read at every interval (orphans_restore), and the fetch
    # lists' registry once an interval.
    assert ran.get("smembers", 0) == 3 * WORKERS + 3


def test_a_dead_worker_first_seen_at_one_workers_turn_is_recovered_at_anothers(
    app: Celery, broker: RedisServer
) -> None:
    client = broker.client()
    tag = unacknowledged_job(broker)
    dead = "high@gone:1:dead"
    client.sadd(OWNED_PREFIX + dead, tag)
    first, second, *_others = leases = worker_leases(broker.url, app)
    try:
        assert first.scan(SCAN_EVERY) is True
        assert second.scan(SCAN_EVERY) is False, "the first worker's turn"
        assert client.hlen("unacked") == 1, "seen dead once: not recovered yet"
        turn_expired(client)
        assert second.scan(SCAN_EVERY) is True
    finally:
        for lease in leases:
            lease.connection.release()
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)
    assert not client.exists(OWNED_PREFIX + dead)
