"""Fault 1: worker-high killed with SIGKILL (main process and pool) halfway through 200 one-second jobs,
with the production lease settings. Nothing is lost, only the jobs in flight run twice, every side effect
exists once, and the killed worker's jobs run again within two minutes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config.celery import app
from tests.faults.ledger import Ledger
from tests.support.broker import Probe
from tests.support.processes import RedisServer, kill_worker, running_workers, stack_environment, wait_for

pytestmark = pytest.mark.faults

JOBS = 200
JOB_SECONDS = 1.0


def test_no_job_is_lost_when_worker_high_is_killed_mid_run(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    # Production settings: KILN_WORKER_DEAD_AFTER_SECONDS and the visibility timeout keep their defaults.
    environ = stack_environment(tmp_path / "var", broker.url, KILN_JOB_HISTORY="false")
    ledger = Ledger(broker)
    for n in range(JOBS):
        app.send_task(
            "probe.effect",
            args=[f"job-{n}", JOB_SECONDS],
            queue="high",
            connection=probe.connection,
            ignore_result=True,
        )
    with running_workers(("worker-high", environ)) as (worker,):
        wait_for(lambda: ledger.runs() >= JOBS // 2, timeout=120, what="half of the jobs to start")
        kill_worker(worker.pid)
        killed_at = time.monotonic()
        # Started and never finished: what the dead worker had in flight.
        in_flight = ledger.started_keys() - ledger.effect_keys()
        # Started and not acknowledged: also a job killed after writing its effect, before its ack.
        unacknowledged = ledger.started_keys() & ledger.unacknowledged_keys()
    assert in_flight, "the kill should catch jobs in flight"
    assert in_flight <= unacknowledged, (
        f"jobs in flight not held in Redis: {sorted(in_flight - unacknowledged)}"
    )

    with running_workers(("worker-high", environ)):  # supervisord's autorestart, done by the test
        wait_for(
            lambda: in_flight <= ledger.effect_keys(),
            timeout=150,
            interval=0.5,
            what="the killed worker's jobs to run again",
        )
        recovered_after = time.monotonic() - killed_at
        wait_for(
            lambda: len(ledger.effect_keys()) == JOBS, timeout=180, interval=0.5, what="every job to finish"
        )

    runs = ledger.runs_per_key()
    assert set(runs) == {f"job-{n}" for n in range(JOBS)}, "no job lost"
    twice = {key for key, count in runs.items() if count > 1}
    assert twice <= unacknowledged, f"only jobs in flight ran twice, not {sorted(twice - unacknowledged)}"
    assert max(runs.values()) <= 2
    assert len(ledger.effect_keys()) == JOBS, "every side effect exists once"
    assert recovered_after < 120, f"the killed worker's jobs ran again after {recovered_after:.0f} s"
    print(
        json.dumps(
            {
                "in_flight": len(in_flight),
                "unacknowledged_started": len(unacknowledged),
                "ran_twice": len(twice),
                "recovered_after_s": round(recovered_after, 1),
            }
        )
    )
