"""Fault 4, again and again: Redis SIGKILLed at random moments under a busy worker-high, down for a random
0.5-4 s each time. The same worker process resumes after every kill by itself, and every job ends with its
effect written.

One kill at a fixed point of a run passed for weeks; kills at random instants (a fetch outstanding, a job
being recorded, run or acknowledged) found two ways the worker exited instead of reconnecting (kombu issue
582, celery issue 9250; both handled in jobs/). The seed is in the failure message: random.Random(seed) replays a run."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import redis

from config.celery import app
from tests.faults.ledger import Ledger
from tests.support.processes import Worker, running_workers, stack_environment, start_redis, wait_for

pytestmark = pytest.mark.faults

KILLS = 4
JOBS_PER_ROUND = 40


def broker_state(client: redis.Redis) -> str:
    """Kiln's keys, the fetch lists and what each client connection last ran (a consumer waiting on
    BLMOVE shows cmd=blmove), for a failure message."""
    fetch_lists = {key: client.llen(key) for key in client.scan_iter(match="kiln:fetching:*")}
    connections = [
        {field: entry.get(field) for field in ("name", "age", "idle", "cmd")}
        for entry in client.client_list()
    ]
    return f"keys {sorted(client.keys('kiln:*'))}, fetch lists {fetch_lists}, connections {connections}"


def test_worker_high_survives_redis_killed_at_random_moments(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    directory = tmp_path / "redis"
    server = start_redis(directory, persistent=True)
    published = 0

    def publish(count: int) -> None:
        nonlocal published
        with app.connection_for_write(server.url) as connection:
            for _ in range(count):
                app.send_task(
                    "probe.effect",
                    args=[f"h-{published}", rng.choice([0.05, 0.2, 0.5])],
                    queue="high",
                    connection=connection,
                    ignore_result=True,
                )
                published += 1

    client, ledger = server.client(), Ledger(server)  # same port after every restart: they reconnect

    def wait_until_settled(worker: Worker, kill: int) -> None:
        wait_for(
            lambda: (
                worker.process.poll() is not None
                or (
                    client.llen("high") == client.hlen("unacked") == 0
                    and len(ledger.effect_keys()) == published
                )
            ),
            timeout=60,
            interval=0.25,
            what=lambda: (
                f"every job to finish after kill {kill} (seed {seed}): {len(ledger.effect_keys())} of "
                f"{published} done, queued {client.llen('high')}, unacked {client.hlen('unacked')}; "
                f"{broker_state(client)}"
            ),
        )
        assert worker.process.poll() is None, (
            f"worker-high exited after kill {kill} (seed {seed}) instead of reconnecting"
        )

    try:
        environ = stack_environment(
            tmp_path / "var", server.url, KILN_JOB_HISTORY="false", KILN_WORKER_DEAD_AFTER_SECONDS="6"
        )
        with running_workers(("worker-high", environ)) as [worker]:
            for kill in range(1, KILLS + 1):
                publish(JOBS_PER_ROUND)
                time.sleep(rng.uniform(0.0, 2.0))
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
                time.sleep(rng.uniform(0.5, 4.0))
                server = start_redis(directory, port=server.port, persistent=True)
                wait_until_settled(worker, kill)
        assert ledger.overlapping_runs() == [], f"a job ran twice at the same time (seed {seed})"
    finally:
        server.stop()
