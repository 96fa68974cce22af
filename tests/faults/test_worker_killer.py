"""A job that kills its whole worker (main process included) every time: the lease recovery puts it back
three times, then parks it (its record failed, out of Redis) instead of letting it kill workers for ever,
and `jobs retry` could publish it again."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from config.celery import app
from tests.support.broker import Probe
from tests.support.processes import RedisServer, Worker, start_worker, wait_for
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.faults


def start_anyway(environ: dict[str, str]) -> Worker:
    """Start worker-high; the killer may take it down before it even says it is ready."""
    try:
        return start_worker("worker-high", environ)
    except AssertionError as error:
        if "worker-high exited with" not in str(error):
            raise  # still not ready in time: a failure, not the killer's doing
        return Worker("worker-high", subprocess.Popen(["true"]), Path(environ["KILN_LOG_DIR"]) / "none.log")


def test_a_job_that_kills_its_worker_is_parked_after_three_restores(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    environ = migrated_environ(tmp_path / "var", broker.url, KILN_WORKER_DEAD_AFTER_SECONDS="3")
    app.send_task(
        "probe.worker_killer", args=["killer"], queue="high", connection=probe.connection, ignore_result=True
    )
    workers: list[Worker] = []
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            # supervisord's autorestart, done by the test: a worker whenever the last one died.
            if not workers or workers[-1].process.poll() is not None:
                workers.append(start_anyway(environ))
            if "parked" in run_manage(environ, "jobs", "failed").stdout:
                break
            time.sleep(1)
        listed = run_manage(environ, "jobs", "failed").stdout
        assert "probe.worker_killer" in listed
        assert "parked: the worker holding it died 3 times" in listed
        attempts = [r for r in probe.records() if r["key"] == "killer"]
        assert len(attempts) == 4, "the first delivery and three restores, then parked"
        assert broker.client().hlen("unacked") == 0
        assert broker.client().llen("high") == 0
        probe.send("after", queue="high")
        if workers[-1].process.poll() is not None:
            workers.append(start_anyway(environ))
        wait_for(lambda: probe.record("after"), timeout=30, what="the pool to run jobs again")
    finally:
        for worker in workers:
            worker.stop()
