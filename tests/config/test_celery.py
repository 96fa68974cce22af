from __future__ import annotations

import pytest
from django.conf import settings

from config.celery import app
from tests.support.processes import RedisServer

pytestmark = pytest.mark.processes


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("thumbnails.tasks.rendition_generate", "high"),
        ("purge.tasks.purge_run_policy", "default"),
        ("someapp.tasks.nobody_routed_this", "default"),
    ],
)
def test_a_published_task_lands_on_the_queue_its_route_names(
    broker: RedisServer, task_name: str, queue: str
) -> None:
    client = broker.client()
    with app.connection_for_write(broker.url) as connection:
        app.send_task(task_name, args=[1], connection=connection, ignore_result=True)
    # kombu's Redis transport keeps each queue as a list named after it.
    depths = {name: client.llen(name) for name in ("high", "default")}
    assert depths == {"high": int(queue == "high"), "default": int(queue == "default")}


def test_delivery_guarantees_are_configured() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False
    assert conf.broker_connection_retry_on_startup is True
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
    assert conf.beat_scheduler == "jobs.beat:SlotClaimingScheduler"


def test_visibility_timeout_is_the_same_for_broker_and_backend_and_above_every_time_limit() -> None:
    broker_timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert broker_timeout == app.conf.result_backend_transport_options["visibility_timeout"]
    assert broker_timeout > max(queue.time_limit for queue in settings.KILN_QUEUES)


def test_tests_in_this_process_publish_to_no_real_broker() -> None:
    with app.connection_for_write() as connection:
        assert connection.as_uri().startswith("redis+socket:///nonexistent/")


@pytest.mark.database
# transaction: beat's scheduler closes the database connection it found (as a long-running process should),
# which the default test transaction would not survive on PostgreSQL.
@pytest.mark.django_db(transaction=True)
def test_beat_installs_the_fixed_schedules_declared_in_settings_over_older_rows(settings) -> None:
    """CELERY_BEAT_SCHEDULE is the one declaration of the fixed periodic tasks: beat writes it to
    django-celery-beat's tables when it starts, replacing what older Kiln versions' migrations installed."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    five_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(
        name="thumbnails: dispatch images left pending",
        task="thumbnails.tasks.pending_sweep",
        interval=five_minutes,
    )
    DatabaseScheduler(app=app)
    installed = {
        task.name: (task.task, task.interval.every, task.interval.period, task.enabled)
        for task in PeriodicTask.objects.filter(name__in=settings.CELERY_BEAT_SCHEDULE)
    }
    assert installed == {
        "thumbnails: dispatch images left pending": ("thumbnails.tasks.pending_sweep", 60, "seconds", True),
        "jobs: alert check": ("jobs.tasks.alerts_check", 60, "seconds", True),
        "outbox: publish what an outage left": ("outbox.tasks.sweep", 30, "seconds", True),
    }


@pytest.mark.database
@pytest.mark.django_db(transaction=True)  # beat's scheduler closes the connection it found, as above
def test_beat_writes_each_entrys_last_run_as_it_sends_it(monkeypatch) -> None:
    """The schedule watch (jobs/schedules.py) reads last_run_at as the proof that beat sent a run: beat
    writes it at every send (CELERY_BEAT_SYNC_EVERY = 1), not only every 3 minutes (Celery's default)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="probe: often", task="probe.nothing", interval=every_second)
    scheduler = DatabaseScheduler(app=app)
    # A task this app does not know is sent by name (Scheduler.send_task): kept here, nothing is published.
    monkeypatch.setattr(scheduler, "send_task", lambda *args, **kwargs: None)
    for _ in range(2):  # the first send always writes; the second is the one the setting decides
        entry = scheduler.schedule["probe: often"]
        scheduler.apply_async(entry, advance=True)
        sent = entry.model.last_run_at  # what beat stamped on the entry's row as it sent it
        assert PeriodicTask.objects.get(name="probe: often").last_run_at == sent
