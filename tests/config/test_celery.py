from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.conf import settings

from config.celery import QueueTimeLimits, app, queue_of
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


def test_queue_of_follows_the_configured_routes() -> None:
    assert queue_of("thumbnails.anything") == "high"
    assert queue_of("purge.anything") == "default"
    assert queue_of("jobs.tasks.anything") == "default"


def test_each_task_gets_the_time_limits_of_its_queue_and_the_worker_lost_retry_delay() -> None:
    annotation = QueueTimeLimits()
    assert annotation.annotate(SimpleNamespace(name="thumbnails.tasks.x")) == {
        "time_limit": 120,
        "soft_time_limit": 110,
        "default_retry_delay": 10,
    }
    assert annotation.annotate(SimpleNamespace(name="purge.tasks.y")) == {
        "time_limit": 300,
        "soft_time_limit": 280,
        "default_retry_delay": 10,
    }


def test_a_task_registered_on_the_app_is_annotated_with_its_queue_limits() -> None:
    task = app.tasks["celery.backend_cleanup"]  # a built-in task: unrouted, so the default queue's limits
    assert (task.time_limit, task.soft_time_limit) == (300, 280)


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
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_visibility_timeout_is_the_same_for_broker_and_backend_and_above_every_time_limit() -> None:
    broker_timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert broker_timeout == app.conf.result_backend_transport_options["visibility_timeout"]
    assert broker_timeout > max(hard for hard, _ in settings.KILN_QUEUE_TIME_LIMITS.values())
    for hard, soft in settings.KILN_QUEUE_TIME_LIMITS.values():
        assert soft < hard


def test_tests_in_this_process_publish_to_no_real_broker() -> None:
    with app.connection_for_write() as connection:
        assert connection.as_uri().startswith("redis+socket:///nonexistent/")
