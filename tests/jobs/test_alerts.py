"""Alerts: mailed once per condition, again only after the cooldown, cleared when the condition goes; a beat
entry that missed its run among them."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from jobs import health, schedules
from jobs.alerts import alerts_check
from jobs.health import QueueState
from jobs.models import Alert
from jobs.selectors import Snapshot

pytestmark = [pytest.mark.database, pytest.mark.django_db]

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def snapshot(high_wait: float | None, workers: int = 1) -> Snapshot:
    queues = (
        QueueState("high", depth=4 if high_wait else 0, oldest_wait=high_wait, workers=workers),
        QueueState("default", depth=0, oldest_wait=None, workers=1),
    )
    thresholds = health.Thresholds.from_settings()
    result = health.system_health(list(queues), broker_ok=True, failed=0, thresholds=thresholds)
    return Snapshot(T0.timestamp(), True, queues, (), 0, result, thresholds)


@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.KILN_ALERT_COOLDOWN_MINUTES = 60


def test_a_long_wait_is_mailed_once_and_not_again_within_the_cooldown(admins) -> None:
    assert alerts_check(snap=snapshot(high_wait=61), now=T0) == ["wait:high"]
    assert len(mail.outbox) == 1
    assert "Queue high: the oldest job has waited 61 s (threshold 60 s)" in mail.outbox[0].body
    assert mail.outbox[0].to == ["ops@example.com"]
    for minutes in (1, 30, 59):
        assert (
            alerts_check(snap=snapshot(high_wait=61 + minutes * 60), now=T0 + timedelta(minutes=minutes))
            == []
        )
    assert len(mail.outbox) == 1
    assert alerts_check(snap=snapshot(high_wait=3700), now=T0 + timedelta(minutes=60)) == ["wait:high"]
    assert len(mail.outbox) == 2


def test_a_cleared_alert_is_mailed_again_when_it_comes_back(admins) -> None:
    alerts_check(snap=snapshot(high_wait=61), now=T0)
    assert alerts_check(snap=snapshot(high_wait=None), now=T0 + timedelta(minutes=1)) == []
    alert = Alert.objects.get(key="wait:high")
    assert not alert.firing
    assert alert.cleared_at == T0 + timedelta(minutes=1)
    assert alerts_check(snap=snapshot(high_wait=90), now=T0 + timedelta(minutes=2)) == ["wait:high"]
    assert len(mail.outbox) == 2


def test_a_queue_without_workers_and_a_pile_of_failures_alert(admins, settings) -> None:
    snap = snapshot(high_wait=None, workers=0)
    snap = Snapshot(
        snap.taken_at,
        True,
        snap.queues,
        (),
        settings.KILN_HEALTH_FAILED_WARNING,
        snap.health,
        snap.thresholds,
    )
    assert sorted(alerts_check(snap=snap, now=T0)) == ["failed", "workers:high"]


def test_an_alert_is_posted_to_the_webhook(admins, settings) -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    settings.KILN_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        alerts_check(snap=snapshot(high_wait=61), now=T0)
        thread.join(timeout=10)
    finally:
        server.server_close()
    assert received == [{"alert": "wait:high", "message": received[0]["message"], "status": "firing"}]
    assert received[0]["message"].startswith("Queue high")


def late(name: str, missing: str = schedules.MISSING_SEND) -> schedules.ScheduleState:
    return schedules.ScheduleState(
        name=name,
        task="purge.tasks.purge_nightly",
        cadence="daily at 00:00",
        status=schedules.LATE,
        missing=missing,
        reason="late since 00:10: beat has sent nothing for the 00:00 run",
    )


def test_a_late_beat_entry_is_mailed_as_schedule_and_its_name_and_cleared_when_it_runs(admins) -> None:
    snap = dataclasses.replace(snapshot(high_wait=None), schedules=(late("purge: nightly"),))
    assert alerts_check(snap=snap, now=T0) == ["schedule:purge: nightly"]
    (sent,) = mail.outbox
    assert sent.subject == "[Kiln] schedule:purge: nightly: beat sent nothing"
    assert sent.body.startswith(
        "Schedule 'purge: nightly' (daily at 00:00, task purge.tasks.purge_nightly): late since 00:10: "
        "beat has sent nothing for the 00:00 run. Is beat running? `supervisorctl status kiln:beat`."
    )
    assert alerts_check(snap=snapshot(high_wait=None), now=T0 + timedelta(minutes=1)) == []
    assert not Alert.objects.get(key="schedule:purge: nightly").firing


def test_a_run_sent_but_never_started_points_at_the_queue_not_at_beat(admins) -> None:
    stuck = late("jobs: alert check", missing=schedules.MISSING_START)
    alerts_check(snap=dataclasses.replace(snapshot(high_wait=None), schedules=(stuck,)), now=T0)
    (sent,) = mail.outbox
    assert sent.subject == "[Kiln] schedule:jobs: alert check: sent, not started"
    assert "Do workers take its queue? `manage.py jobs status`" in sent.body


def test_an_entry_with_a_long_name_gets_a_key_alert_keys_can_hold(admins) -> None:
    name = "reports: " + "x" * 190
    snap = dataclasses.replace(snapshot(high_wait=None), schedules=(late(name),))
    (key,) = alerts_check(snap=snap, now=T0)
    assert key == f"schedule:{name}"[:100]
    assert Alert.objects.get(key=key).firing


def test_the_cron_watchdog_raises_a_late_entry_with_beat_and_workers_gone(admins, app_broker) -> None:
    """`manage.py jobs alerts` reads the entries from the database: no beat, no worker needed."""
    from django_celery_beat.models import PeriodicTask

    from tests.jobs.test_selectors import beat_entry

    PeriodicTask.objects.update(last_run_at=timezone.now())  # the nightly purge: just sent
    beat_entry("probe: beat silent", sent_ago=600)
    out = StringIO()
    call_command("jobs", "alerts", stdout=out)
    assert (
        "firing  schedule:probe: beat silent: Schedule 'probe: beat silent' (every minute" in out.getvalue()
    )
    subjects = [message.subject for message in mail.outbox]
    assert "[Kiln] schedule:probe: beat silent: beat sent nothing" in subjects
    assert not any("purge: nightly" in subject for subject in subjects)
