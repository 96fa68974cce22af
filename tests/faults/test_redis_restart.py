"""Fault 4: Redis killed with SIGKILL mid-run and started again on the same port 5 s later, with its
append-only file. The workers reconnect by themselves, queued and unacknowledged jobs survive and end,
and no job runs twice at the same time. A message a worker took in the instant Redis died is kept too: Kiln's
reliable fetch (broker/transport.py) holds it in the worker's fetch list until it is recorded unacknowledged."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from config.celery import app
from tests.faults.ledger import Ledger
from tests.support.processes import running_workers, stack_environment, start_redis, wait_for

pytestmark = pytest.mark.faults

HIGH_JOBS, DEFAULT_JOBS = 60, 12
JOB_SECONDS = 0.5


def test_workers_resume_and_lose_nothing_when_redis_is_killed_and_restarted(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    server = start_redis(directory, persistent=True)
    try:
        environ = stack_environment(
            tmp_path / "var", server.url, KILN_JOB_HISTORY="false", KILN_WORKER_DEAD_AFTER_SECONDS="6"
        )
        ledger = Ledger(server)
        with app.connection_for_write(server.url) as connection:
            for n in range(HIGH_JOBS):
                app.send_task(
                    "probe.effect",
                    args=[f"h-{n}", JOB_SECONDS],
                    queue="high",
                    connection=connection,
                    ignore_result=True,
                )
            for n in range(DEFAULT_JOBS):
                app.send_task(
                    "probe.effect",
                    args=[f"d-{n}", JOB_SECONDS * 4],
                    queue="default",
                    connection=connection,
                    ignore_result=True,
                )
        expected = {f"h-{n}" for n in range(HIGH_JOBS)} | {f"d-{n}" for n in range(DEFAULT_JOBS)}
        with running_workers(("worker-high", environ), ("worker-default", environ)):
            wait_for(
                lambda: len(ledger.effect_keys()) >= HIGH_JOBS // 3,
                timeout=60,
                what="a third of the jobs to finish",
            )
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
            time.sleep(5)
            server = start_redis(directory, port=server.port, persistent=True)
            ledger = Ledger(server)
            back_at = time.monotonic()
            assert server.client().dbsize() > 0, "the append-only file brought the queues back"
            client = server.client()
            # Settled: nothing queued and nothing unacknowledged (a job runs while unacknowledged).
            wait_for(
                lambda: (
                    client.llen("high") == client.llen("default") == client.hlen("unacked") == 0
                    and len(ledger.effect_keys()) == HIGH_JOBS + DEFAULT_JOBS
                ),
                timeout=90,
                interval=0.5,
                what=lambda: (
                    f"every job to finish after Redis came back: {len(ledger.effect_keys())} done, "
                    f"queued high={client.llen('high')} default={client.llen('default')}, "
                    f"unacked={client.hlen('unacked')}, keys={sorted(client.keys('kiln:*'))}, "
                    f"fetch lists={ {key: client.llen(key) for key in client.scan_iter(match='kiln:fetching:*')} }, "
                    f"missing={sorted(expected - ledger.effect_keys())}, started={sorted(ledger.started_keys() - ledger.effect_keys())}"
                ),
            )
            finished_after = time.monotonic() - back_at
        runs = ledger.runs_per_key()
        assert expected - set(runs) == set(), "jobs lost"
        assert ledger.overlapping_runs() == [], "a job ran twice at the same time"
        assert finished_after < 60, (
            f"the workers took {finished_after:.0f} s to finish everything after Redis returned"
        )
        print({"finished_after_s": round(finished_after, 1), "ran_twice": sum(c > 1 for c in runs.values())})
    finally:
        server.stop()


def test_a_job_running_across_a_short_redis_outage_is_acknowledged_once_it_finishes(tmp_path: Path) -> None:
    """A job that was running when Redis died, and finishes after it is back, is done: its worker's lease
    connection acknowledges it (its own channel was closed with the lost connection), so it runs once and
    nothing logs "Couldn't ack". kombu's ack on the closed channel failed, and the worker's recovery then
    ran the finished job a second time."""
    directory = tmp_path / "redis"
    server = start_redis(directory, persistent=True)
    try:
        environ = stack_environment(
            tmp_path / "var", server.url, KILN_JOB_HISTORY="false", KILN_WORKER_DEAD_AFTER_SECONDS="6"
        )
        ledger = Ledger(server)
        with running_workers(("worker-high", environ)) as [worker]:
            with app.connection_for_write(server.url) as connection:
                app.send_task(
                    "probe.effect", args=["long", 8], queue="high", connection=connection, ignore_result=True
                )
            wait_for(lambda: "long" in ledger.started_keys(), timeout=30, what="the long job to start")
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
            time.sleep(2)
            server = start_redis(directory, port=server.port, persistent=True)
            client, ledger = server.client(), Ledger(server)
            wait_for(
                lambda: "long" in ledger.effect_keys() and client.hlen("unacked") == 0,
                timeout=60,
                interval=0.25,
                what=lambda: f"the long job to finish and be acknowledged: unacked {client.hlen('unacked')}",
            )
            # Recovery scans every 2 s with a 6 s lease and puts back an orphan at its second sighting: a
            # job put back would have started again well within this.
            time.sleep(8)
            assert (client.llen("high"), client.hlen("unacked")) == (0, 0)
            assert ledger.runs_per_key()["long"] == 1, "the job ran again after it finished"
            assert worker.process.poll() is None
            assert "Couldn't ack" not in worker.log()
    finally:
        server.stop()
