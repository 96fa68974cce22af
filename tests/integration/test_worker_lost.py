"""A job that kills its own pool process is retried a bounded number of times, then fails with a reason;
other jobs keep flowing meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.celery import app
from tests.support.broker import Probe
from tests.support.processes import RedisServer, running_workers, wait_for
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.processes


def test_a_poison_pill_is_parked_after_its_retries_and_other_jobs_keep_flowing(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    environ = migrated_environ(tmp_path / "var", broker.url, KILN_WORKER_LOST_RETRY_SECONDS="1")
    with running_workers(("worker-high", environ)):
        app.send_task(
            "probe.poison", args=["pill"], queue="high", connection=probe.connection, ignore_result=True
        )
        for n in range(20):
            probe.send(f"ok-{n}", queue="high", sleep=0.2)
        wait_for(
            lambda: len([r for r in probe.records() if r["key"].startswith("ok-")]) == 20,
            timeout=60,
            what="the ordinary jobs to run while the poison pill kills its processes",
        )
        listed = wait_for(
            lambda: "probe.poison" in (out := run_manage(environ, "jobs", "failed").stdout) and out,
            timeout=90,
            interval=1,
            what="the poison pill to land in the failed list",
        )
    attempts = [r for r in probe.records() if r["key"] == "pill"]
    assert len(attempts) == 4, "the first run and the task's 3 retries, then no more"
    assert "attempts=4" in listed
    assert "WorkerLostError: the worker was lost on attempt 4, the last one allowed" in listed
    assert broker.client().llen("high") == 0
