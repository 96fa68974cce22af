"""Rejected inputs (jobs/rejections.py): counted by kind and hour from the sources domain apps register,
shown by `jobs status`, `jobs health --json`, the dashboard and /metrics, and never part of health or alerts.
A fake source stands in for thumbnails here; tests/thumbnails/test_rejected_inputs.py runs the real one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command

from jobs import rejections, selectors
from jobs.alerts import alerts_check
from jobs.health import HEALTHY
from jobs.rejections import RejectionSource
from tests.jobs.test_views import samples

pytestmark = [pytest.mark.database, pytest.mark.django_db]

NOW = datetime(2026, 12, 4, 11, 30, tzinfo=UTC)


def fake_source(rows: list[tuple[datetime, str, int]]) -> RejectionSource:
    """A source that keeps its rejections as (moment, kind) and truncates them to the hour, as a database
    would: what the reader asks for, not what the test hands it, decides what comes back."""

    def counts(since: datetime) -> list[tuple[datetime, str, int]]:
        grouped: dict[tuple[datetime, str], int] = {}
        for moment, kind, count in rows:
            if moment >= since:
                hour = moment.replace(minute=0, second=0, microsecond=0)
                grouped[hour, kind] = grouped.get((hour, kind), 0) + count
        return [(hour, kind, count) for (hour, kind), count in grouped.items()]

    return RejectionSource("uploads", counts, kinds=("corrupt", "format", "truncated"))


@pytest.fixture
def registered(monkeypatch):
    """Replace the registered sources with the fake one the test fills in."""

    def register(rows: list[tuple[datetime, str, int]]) -> None:
        monkeypatch.setattr(rejections, "SOURCES", {"uploads": fake_source(rows)})

    return register


def test_rejections_are_counted_by_kind_for_the_last_sixty_minutes_and_by_clock_hour_for_a_day(
    registered,
) -> None:
    registered(
        [
            (NOW - timedelta(hours=30), "format", 7),  # before the day: in no figure
            (NOW - timedelta(hours=5, minutes=10), "format", 2),  # 06:20
            (NOW - timedelta(minutes=50), "corrupt", 1),  # 10:40: this clock hour's neighbour, last hour
            (NOW - timedelta(minutes=70), "truncated", 1),  # 10:20: hour 10, but not the last 60 minutes
            (NOW - timedelta(minutes=10), "truncated", 3),  # 11:20
        ]
    )
    found = rejections.rejections_read(NOW)
    assert found.last_hour == {"corrupt": 1, "truncated": 3}
    assert found.last_hour_total == 4
    assert len(found.hours) == 24
    assert found.hours[0].start == datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert found.hours[-1].start == datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    by_hour = {hour.start.hour: hour.by_kind for hour in found.hours if hour.total}
    assert by_hour == {6: {"format": 2}, 10: {"corrupt": 1, "truncated": 1}, 11: {"truncated": 3}}
    assert found.day_by_kind == {"truncated": 4, "format": 2, "corrupt": 1}


def test_the_hours_are_the_local_clocks_and_a_change_of_summer_time_neither_skips_nor_repeats_one(
    settings,
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    # 25 October 2026: at 03:00 summer time the clocks go back to 02:00, so 02:00 happens twice.
    starts = rejections.hour_starts(datetime(2026, 10, 25, 4, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    assert len(set(starts)) == 24
    assert all(later - earlier == timedelta(hours=1) for earlier, later in pairwise(starts))
    labels = [rejections.HourRejections(start, {}).label for start in starts[-4:]]
    assert labels == ["02:00", "02:00", "03:00", "04:00"]


def test_status_shows_rejected_inputs_beside_the_failed_jobs_and_not_in_them(registered) -> None:
    now = datetime.now(UTC)
    registered([(now - timedelta(minutes=5), "format", 3), (now - timedelta(minutes=1), "truncated", 2)])
    out = StringIO()
    call_command("jobs", "status", stdout=out)
    text = out.getvalue()
    assert "failed      0\n" in text
    assert (
        "rejected    5 inputs in the last hour (format 3, truncated 2), 5 in 24 h (not job failures)" in text
    )
    assert "  per hour  " in text

    out = StringIO()
    call_command("jobs", "status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["failed"] == 0
    assert data["rejected_inputs"]["last_hour"] == {"total": 5, "by_kind": {"format": 3, "truncated": 2}}
    assert data["rejected_inputs"]["last_day"]["total"] == 5
    assert len(data["rejected_inputs"]["hours"]) == 24


def test_without_rejections_status_says_none(registered) -> None:
    registered([])
    out = StringIO()
    call_command("jobs", "status", stdout=out)
    assert "rejected    0 inputs in the last hour, 0 in 24 h (not job failures)\n" in out.getvalue()
    assert "per hour" not in out.getvalue()


@pytest.fixture
def healthy_cluster(app_broker, monkeypatch):
    """A reachable broker, one worker per queue and every beat entry just sent, so health is `healthy`
    unless something else says not (the nightly purge migrate installed would be late in a run that
    reaches this test past 00:10 after starting before midnight)."""
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    workers = [
        selectors.WorkerInfo(f"{name}@a", name, (name,), (name,), 2, None, {})
        for name in selectors.queue_names()
    ]
    monkeypatch.setattr(selectors, "workers_report", lambda timeout=None: workers)
    PeriodicTask.objects.update(last_run_at=timezone.now())


def test_many_rejections_leave_health_alerts_and_the_exit_code_as_they_were(
    registered, healthy_cluster, settings
) -> None:
    settings.ADMINS = [("Ops", "ops@example.com")]
    now = datetime.now(UTC)
    registered([(now - timedelta(minutes=1), "corrupt", 10_000)])

    snap = selectors.snapshot(report_timeout=0.2)
    assert snap.rejections.last_hour_total == 10_000
    assert (snap.health.level, snap.health.reasons, snap.failed) == (HEALTHY, (), 0)
    assert alerts_check(snap=snap) == []
    assert mail.outbox == []

    out = StringIO()
    call_command("jobs", "health", "--exit-code", stdout=out)  # exits (SystemExit) on anything but healthy
    assert out.getvalue().startswith("system: healthy\n")
    assert (
        "rejected inputs in the last hour: 10000 (corrupt 10000); information, not part of the level"
        in out.getvalue()
    )

    out = StringIO()
    call_command("jobs", "health", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert (data["level"], data["rejected_inputs"]["last_hour"]["total"]) == (HEALTHY, 10_000)


def test_metrics_carry_the_last_hours_rejections_by_kind_with_zero_for_kinds_not_seen(
    client, registered, app_broker, monkeypatch
) -> None:
    registered([(datetime.now(UTC) - timedelta(minutes=1), "format", 4)])
    monkeypatch.setattr(selectors, "_last", None)  # another test's cached snapshot must not answer
    found = samples(client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode())
    assert found[("kiln_inputs_rejected", (("kind", "format"),))] == 4
    assert found[("kiln_inputs_rejected", (("kind", "corrupt"),))] == 0
    assert found[("kiln_failed_jobs", ())] == 0


def test_the_dashboard_data_carries_the_rejections_and_the_page_a_place_for_them(
    client, operator, registered, app_broker, monkeypatch
) -> None:
    registered([(datetime.now(UTC) - timedelta(minutes=1), "truncated", 2)])
    monkeypatch.setattr(selectors, "_last", None)
    client.force_login(operator)
    data = client.get("/admin/jobs/dashboard/data/").json()
    assert data["failed"] == 0
    assert data["rejected_inputs"]["last_hour"]["by_kind"] == {"truncated": 2}
    page = client.get("/admin/jobs/dashboard/").content.decode()
    assert 'id="kiln-rejected"' in page
    assert 'id="kiln-rejections"' in page
