"""outbox/beat.py: beat's sends become outbox intents."""

from __future__ import annotations

import inspect

import pytest
from celery.beat import Scheduler

from config.celery import app
from outbox.beat import UPSTREAM_PRIVATE_MEMBERS, OutboxScheduler
from outbox.models import Intent


def test_the_private_members_of_celerys_scheduler_the_outbox_scheduler_uses_are_still_there() -> None:
    for member in UPSTREAM_PRIVATE_MEMBERS:
        assert hasattr(Scheduler, member), member
    assert "self._tasks_since_sync += 1" in inspect.getsource(Scheduler.apply_async), "its meaning changed"


@pytest.mark.database
@pytest.mark.django_db(transaction=True)  # beat's scheduler closes the connection it found
def test_a_slot_sent_while_the_broker_is_down_is_kept_as_an_intent_and_the_entry_moves_on() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="probe: often", task="probe.record", args='["k", 0.0]', interval=every_second
    )
    scheduler = OutboxScheduler(app=app)
    entry = scheduler.schedule["probe: often"]
    scheduler.apply_async(entry, advance=True)  # each test starts with no broker
    intent = Intent.objects.get(key="beat:probe: often")
    assert (intent.task_name, intent.args, intent.published_at) == ("probe.record", ["k", 0.0], None)
    assert PeriodicTask.objects.get(name="probe: often").last_run_at is not None, "the slot was taken"
