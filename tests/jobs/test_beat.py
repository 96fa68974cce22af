"""Beat's slot claims (jobs/beat.py, jobs.schedules.send_slot): no slot of a beat entry is sent twice, even
by two beats at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from celery import schedules as celery_schedules

from config.celery import app
from jobs.schedules import send_slot

pytestmark = pytest.mark.database

T0 = datetime(2026, 3, 1, 12, 0, 0, 300000, tzinfo=UTC)


def test_an_interval_slot_is_on_the_intervals_grid_whatever_the_millisecond_of_the_last_send() -> None:
    every = celery_schedules.schedule(timedelta(seconds=2))
    assert send_slot(every, T0) == datetime(2026, 3, 1, 12, 0, 2, tzinfo=UTC)
    assert send_slot(every, T0 + timedelta(milliseconds=40)) == send_slot(every, T0)


def test_one_beats_successive_sends_name_different_slots() -> None:
    every = celery_schedules.schedule(timedelta(seconds=2))
    first = send_slot(every, T0)
    second = send_slot(every, T0 + timedelta(seconds=2, milliseconds=3))  # sent as the first came due
    assert second - first == timedelta(seconds=2)


def test_a_crontab_slot_is_the_first_after_the_last_send() -> None:
    nightly = celery_schedules.crontab(minute=0, hour=0)
    assert send_slot(nightly, datetime(2026, 3, 1, 0, 0, 0, 50000, tzinfo=UTC)) == datetime(
        2026, 3, 2, tzinfo=UTC
    )


def scheduler_sending(monkeypatch, sent: list[str]):
    """A beat scheduler whose publishes reach a fake broker: `sent` gets each task name published."""
    from celery import current_app

    from jobs.beat import SlotClaimingScheduler

    def send_task(name: str, *args, **kwargs) -> SimpleNamespace:
        sent.append(name)
        return SimpleNamespace(id=kwargs.get("task_id"))

    # The outbox publishes each intent through the current app's send_task.
    monkeypatch.setattr(current_app, "send_task", send_task)
    return SlotClaimingScheduler(app=app)


@pytest.mark.django_db(transaction=True)  # beat's scheduler closes the connection it found
def test_a_second_beat_does_not_send_a_slot_the_first_sent(monkeypatch) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from jobs.models import ScheduleSlot
    from outbox.models import Intent

    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="probe: often", task="probe.nothing", interval=every_minute)
    sent: list[str] = []
    first, second = scheduler_sending(monkeypatch, sent), scheduler_sending(monkeypatch, sent)
    for scheduler in (first, second):  # as beat's tick does: advance the entry, send the one that came due
        entry = scheduler.schedule["probe: often"]
        scheduler.reserve(entry)
        scheduler.apply_async(entry, advance=False)
    for scheduler in (first, second):
        scheduler.sync()  # now, not at the process's exit, when the test database is gone
    assert sent == ["probe.nothing"]
    [intent] = Intent.objects.all()
    assert intent.published_at is not None
    claim = ScheduleSlot.objects.get(name="probe: often")
    assert claim.task_id == intent.task_id


@pytest.mark.django_db(transaction=True)
def test_a_send_that_cannot_be_written_gives_its_slot_back(monkeypatch) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from jobs.models import ScheduleSlot
    from outbox import services as outbox

    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="probe: often", task="probe.nothing", interval=every_minute)
    scheduler = scheduler_sending(monkeypatch, [])

    def database_refuses(**kwargs):
        raise RuntimeError("the intent could not be written")

    monkeypatch.setattr(outbox, "beat_send", database_refuses)
    entry = scheduler.schedule["probe: often"]
    with pytest.raises(RuntimeError, match="could not be written"):
        scheduler.apply_async(entry, advance=False)
    assert not ScheduleSlot.objects.exists()
