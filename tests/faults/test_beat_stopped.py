"""Fault 8: beat stopped (`supervisorctl stop kiln:beat`) on the running stack. Every beat entry is watched as
a dead-man's switch: an entry that fires every second is reported late by `jobs health` once its grace (3 s
here, set by name in KILN_SCHEDULE_GRACE for the checking commands) has passed, and `jobs alerts` from cron,
which needs no beat, mails schedule:<name>."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import wait_for
from tests.support.stack import Stack, run_manage

pytestmark = pytest.mark.faults

ENTRY = "probe: every second"
GRACE = 3
# A task every worker has (Celery's own, it returns its arguments) on `default`, where worker-default takes it.
CREATE = (
    "from django_celery_beat.models import IntervalSchedule, PeriodicTask; "
    "every, _ = IntervalSchedule.objects.get_or_create(every=1, period='seconds'); "
    f"PeriodicTask.objects.create(name={ENTRY!r}, task='celery.accumulate', args='[16]', interval=every)"
)
DELETE = f"from django_celery_beat.models import PeriodicTask; PeriodicTask.objects.filter(name={ENTRY!r}).delete()"


def test_a_stopped_beat_makes_its_entries_late_in_health_and_raises_their_alert(stack: Stack) -> None:
    checking = {**stack.environ, "KILN_SCHEDULE_GRACE": f"{ENTRY}={GRACE}", "KILN_ADMINS": "ops@example.com"}

    def entry() -> dict:
        health = run_manage(checking, "jobs", "health", "--json")
        assert health.returncode == 0, health.stderr
        report = json.loads(health.stdout)
        return next((e for e in report["schedules"] if e["name"] == ENTRY), {}) | {
            "reasons": report["reasons"]
        }

    created = stack.manage("shell", "-c", CREATE)
    assert created.returncode == 0, created.stderr
    try:
        # Beat reads the changed schedule within its 5 s loop and sends every second; worker-default runs them.
        running = wait_for(
            lambda: (e := entry()).get("last_started_at") and e,
            timeout=30,
            interval=1,
            what=lambda: f"beat to send {ENTRY!r} and a worker to start it: {entry()}",
        )
        assert running["status"] in {"on time", "due"}, running
        # Sent every second: the latest send may still wait for worker-default when health looks.
        assert running["last_outcome"] in {"queued", "started", "succeeded"}, running

        stopped = stack.manage("kiln", "ctl", "stop", "kiln:beat")
        assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        late = wait_for(
            lambda: (e := entry()).get("late") and e,
            timeout=GRACE + 20,
            interval=1,
            what=lambda: f"jobs health to report {ENTRY!r} late with beat stopped: {entry()}",
        )
        assert late["missing"] == "send", late
        assert "beat has sent nothing" in late["reason"], late
        assert f"schedule {ENTRY}: {late['reason']}" in late["reasons"]

        alerts = run_manage(checking, "jobs", "alerts")
        assert alerts.returncode == 0, alerts.stderr
        assert f"firing  schedule:{ENTRY}: Schedule {ENTRY!r} (every second" in alerts.stdout, alerts.stdout
        assert "(notified now)" in alerts.stdout
        mails = [path.read_text() for path in (stack.var_dir / "mail").iterdir()]
        assert any(f"Subject: [Kiln] schedule:{ENTRY}: beat sent nothing" in mail for mail in mails), mails
        assert any("Is beat running? `supervisorctl status kiln:beat`" in mail for mail in mails)
    finally:
        # The shared stack as the other tests expect it: no fast entry, no alert of ours firing (one check
        # clears it, in the same process as the delete), beat running (`start` waits for RUNNING).
        stack.manage("shell", "-c", f"{DELETE}; from jobs.alerts import alerts_check; alerts_check()")
        started = stack.manage("kiln", "ctl", "start", "kiln:beat")
        assert "started" in started.stdout, started.stdout + started.stderr
