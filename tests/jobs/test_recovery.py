"""jobs/recovery.py against a real redis-server: a job that no worker's lease owns goes back to its queue
only once it is seen so at two scans in a row (its worker may write a failed claim only after Redis is
back, while it runs the job)."""

from __future__ import annotations

import time

import pytest

from jobs import recovery, transport
from jobs.recovery import (
    ALIVE_PREFIX,
    OWNED_PREFIX,
    RECOVERING_PREFIX,
    RESTORED_PREFIX,
    tags_restore,
    unowned_jobs_restore,
    worker_jobs_restore,
)
from tests.jobs.test_transport import delivered, publish
from tests.support.processes import RedisServer


def unacknowledged_job(broker: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A job delivered to a worker that then lost its connection: in `unacked`, 100 s old, owned by nobody."""
    monkeypatch.setattr(recovery, "LEASE", object())
    publish(broker.url, {"n": 1})
    conn, message = delivered(broker.url)
    with transport.connection_lost():
        conn.close()
    tag = message.delivery_tag
    broker.client().zadd("unacked_index", {tag: time.time() - 100})
    return tag


def test_a_job_no_lease_owns_goes_back_when_seen_so_at_two_scans(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_url", broker.url)
    client = broker.client()
    tag = unacknowledged_job(broker, monkeypatch)
    suspected: set[str] = set()
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    assert suspected == {tag}
    assert client.hlen("unacked") == 1
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 1
    assert (client.llen("high"), client.hlen("unacked")) == (1, 0)


def test_a_claim_written_between_the_two_scans_keeps_the_job_with_its_worker(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_url", broker.url)
    client = broker.client()
    tag = unacknowledged_job(broker, monkeypatch)
    suspected: set[str] = set()
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    client.sadd(OWNED_PREFIX + "high@host:1:abcd", tag)  # the worker's lease thread, once Redis is back
    assert unowned_jobs_restore(app, client, older_than=30, suspected=suspected) == 0
    assert (client.llen("high"), client.hlen("unacked")) == (0, 1)
    assert suspected == set()


def test_a_job_put_back_by_one_worker_and_taken_again_is_not_put_back_by_another(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers judge one unowned job at the same scan. The first puts it back and a consumer takes it
    again under the same delivery tag; the second, acting on what it read before, must leave that new
    delivery alone (the job would otherwise run twice at once: seen in test_redis_restart)."""
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_url", broker.url)
    client = broker.client()
    tag = unacknowledged_job(broker, monkeypatch)
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
        with transport.connection_lost():
            conn.close()


def test_one_worker_recovers_a_dead_workers_jobs_and_counts_their_death_once(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_url", broker.url)
    client = broker.client()
    tag = unacknowledged_job(broker, monkeypatch)
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
