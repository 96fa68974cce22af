"""`manage.py jobs health --exit-code` for monitors, against a real Redis and real pools.

Its own module: the pools of test_jobs_operations.py must not be running on the same broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.broker import Probe
from tests.support.processes import RedisServer, running_workers, wait_for
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.processes


def test_health_exit_code_turns_non_zero_when_the_workers_are_stopped_and_jobs_wait(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    environ = migrated_environ(tmp_path / "var", broker.url)
    with running_workers(("worker-high", environ), ("worker-default", environ)):
        # A worker busy starting up may miss the health check's 1 s report window: ask again until it answers.
        healthy = wait_for(
            lambda: (
                (result := run_manage(environ, "jobs", "health", "--exit-code")).returncode == 0 and result
            ),
            timeout=20,
            interval=1,
            what="jobs health to report healthy with both pools running",
        )
        assert "system: healthy" in healthy.stdout
    probe.send("nobody-takes-me", queue="high")
    unhealthy = run_manage(environ, "jobs", "health", "--exit-code", "--json")
    assert unhealthy.returncode == 2, unhealthy.stdout + unhealthy.stderr
    report = json.loads(unhealthy.stdout)
    high = next(q for q in report["queues"] if q["name"] == "high")
    assert report["level"] == "critical"
    assert high["workers"] == 0
    assert high["depth"] == 1
    assert "no worker consumes this queue" in high["reasons"]


def test_an_alert_mail_goes_out_once_and_not_again_within_the_cooldown(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    environ = migrated_environ(
        tmp_path / "var", broker.url, KILN_QUEUE_WAITS="high=1", KILN_ADMINS="ops@example.com"
    )
    probe.send("waits-forever", queue="high")  # no worker runs: it waits, and no pool consumes high
    time.sleep(1.5)
    first = run_manage(environ, "jobs", "alerts")
    assert first.returncode == 0, first.stderr
    assert "firing  wait:high" in first.stdout
    assert "firing  workers:high" in first.stdout
    second = run_manage(environ, "jobs", "alerts")
    assert "(notified now)" not in second.stdout
    mails = sorted((tmp_path / "var" / "mail").iterdir())
    bodies = [mail.read_text() for mail in mails]
    subjects = sorted(line for body in bodies for line in body.splitlines() if line.startswith("Subject:"))
    assert len(subjects) == 3, subjects  # wait:high, workers:high, workers:default: each once
    assert any("wait:high" in subject for subject in subjects)
    assert all("ops@example.com" in body for body in bodies)
