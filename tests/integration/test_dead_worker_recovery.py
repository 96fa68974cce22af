"""A worker killed with SIGKILL: its unacknowledged jobs run again on another worker within seconds
(broker/recovery.py), not after the hour-long visibility timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.broker import Probe
from tests.support.processes import (
    RedisServer,
    kill_worker,
    program_command,
    running_workers,
    stack_environment,
    wait_for,
)

pytestmark = pytest.mark.processes

JOB_SECONDS = 4.0


def test_the_jobs_of_a_killed_worker_run_again_on_a_live_one_within_seconds(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    environ = stack_environment(
        tmp_path / "var", broker.url, KILN_WORKER_DEAD_AFTER_SECONDS="3", KILN_JOB_HISTORY="false"
    )
    victim_command = [
        "--hostname=victim@%h" if part.startswith("--hostname=") else part
        for part in program_command("worker-high", environ)
    ]
    with running_workers(("worker-high", environ, victim_command)) as (victim,):
        for n in range(2):
            probe.send(f"long-{n}", queue="high", sleep=JOB_SECONDS)
        wait_for(lambda: len(probe.records()) == 2, timeout=20, what="the victim to start both jobs")
        assert {record["hostname"].split("@")[0] for record in probe.records()} == {"victim"}
        kill_worker(victim.pid)
        killed_at = time.monotonic()
        assert broker.client().hlen("unacked") == 2, "both jobs should be unacknowledged after the kill"

    with running_workers(("worker-high", environ)):
        # Timed from when the live worker is ready: its start-up (10-20 s on a busy machine) is not recovery.
        ready_after = time.monotonic() - killed_at
        wait_for(
            lambda: sum(r["hostname"].startswith("high@") for r in probe.records()) == 2,
            timeout=30,
            what="both jobs of the killed worker to start again on the live worker",
        )
        recovered_after = time.monotonic() - killed_at - ready_after
    keys = sorted(record["key"] for record in probe.records())
    assert keys == ["long-0", "long-0", "long-1", "long-1"], "each job ran on the victim and once more"
    # The lease expires 3 s after the kill and a scan runs every second; a dead worker is confirmed at
    # the second scan that finds it: a few seconds, far below the visibility timeout's hour.
    assert recovered_after < 15, f"recovered {recovered_after:.1f} s after the live worker was ready"
    assert broker.client().hlen("unacked") <= 2  # only the survivor's own, until it acknowledges them
