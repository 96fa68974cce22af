"""The two pools as kiln.conf starts them, on a private Redis: isolation and autoscaling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Probe, empty_broker
from tests.support.processes import RedisServer, Worker, running_workers, stack_environment, wait_for

pytestmark = pytest.mark.processes

LONG_TASK_SECONDS = 3.0


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[dict[str, Worker]]:
    empty_broker(redis_server)
    environ = stack_environment(tmp_path_factory.mktemp("pools") / "var", redis_server.url)
    with running_workers(("worker-high", environ), ("worker-default", environ)) as (high, default):
        yield {"high": high, "default": default}


def test_a_high_task_starts_within_a_second_while_every_default_process_is_busy(
    pools: dict[str, Worker], probe: Probe
) -> None:
    default_processes = pools["default"].pool_size()
    assert default_processes == 2
    for n in range(default_processes + 4):  # every process busy, four more waiting behind them
        probe.send(f"slow-{n}", queue="default", sleep=LONG_TASK_SECONDS)
    wait_for(
        lambda: len([r for r in probe.records() if r["key"].startswith("slow-")]) == default_processes,
        timeout=10,
        what="both worker-default processes to start a slow task",
    )

    fast = []
    for n in range(5):
        probe.send(f"fast-{n}", queue="high")
        record = wait_for(
            lambda n=n: probe.record(f"fast-{n}"), timeout=5, what=f"high task fast-{n} to start"
        )
        wait = record["started_at"] - record["published_at"]
        assert wait < 1.0, f"high task fast-{n} waited {wait:.3f} s behind a saturated default pool"
        fast.append(record)

    # Saturated at the moment each high task started: as many slow tasks running as default has processes
    # (the six slow tasks keep it so for three rounds, however long the five checks took).
    slow = [r for r in probe.records() if r["key"].startswith("slow-")]
    for record in fast:
        at = record["started_at"]
        running = [r for r in slow if r["started_at"] <= at < r["started_at"] + LONG_TASK_SECONDS]
        assert len(running) == default_processes, f"default was not saturated when {record['key']} started"


def test_no_task_ever_runs_on_the_other_pool(pools: dict[str, Worker], probe: Probe) -> None:
    for n in range(20):
        probe.send(f"h{n}", queue="high")
        probe.send(f"d{n}", queue="default")
    wait_for(lambda: len(probe.records()) == 40, timeout=30, what="all 40 probe tasks to run")

    for record in probe.records():
        assert record["queue"] == ("high" if record["key"].startswith("h") else "default")
        assert record["hostname"].startswith(f"{record['queue']}@"), record
    high_pids = {p.pid for p in pools["high"].celery_process().children()}
    default_pids = {p.pid for p in pools["default"].celery_process().children()}
    for record in probe.records():
        assert record["pid"] in (high_pids if record["queue"] == "high" else default_pids), record


def test_worker_high_runs_at_nice_15_and_worker_default_at_19_below_the_web(pools: dict[str, Worker]) -> None:
    for name, level in (("high", 15), ("default", 19)):
        main = pools[name].celery_process()
        assert "celery" in " ".join(main.cmdline()), "nice should exec celery, keeping the pid"
        assert main.nice() == level
        assert [child.nice() for child in main.children()] == [level] * len(main.children())
        assert main.children(), f"{name} has no pool processes"


def test_worker_high_grows_to_ten_processes_under_backlog_and_shrinks_back_when_idle(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    # Celery's autoscaler keeps grown processes 30 s after the last job; 2 s keeps the test short.
    environ = stack_environment(tmp_path / "var", broker.url, AUTOSCALE_KEEPALIVE="2")
    with running_workers(("worker-high", environ)) as (worker,):
        assert worker.pool_size() == 2
        for n in range(100):
            probe.send(f"backlog-{n}", queue="high", sleep=1.0)
        wait_for(lambda: worker.pool_size() == 10, timeout=15, what="worker-high to grow to 10 processes")
        assert worker.pool_size() <= 10
        wait_for(lambda: len(probe.records()) == 100, timeout=60, what="all 100 backlog tasks to start")
        wait_for(
            lambda: worker.pool_size() == 2, timeout=45, what="worker-high to shrink back to 2 processes"
        )
