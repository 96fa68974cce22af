"""config/queues.py: one declaration per queue, and what follows from it (routes, time limits, variables)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.celery import app
from config.env import env_queues
from config.queues import QueueSpec, QueueTimeLimits, celery_routes, queue_for, queues_check

HIGH = QueueSpec(
    name="high", routes=("thumbnails.*",), time_limit=120, soft_time_limit=110,
    wait_warning=60, wait_critical=300, autoscale=(2, 10),
)  # fmt: skip
DEFAULT = QueueSpec(
    name="default", routes=("purge.*",), time_limit=300, soft_time_limit=280,
    wait_warning=900, wait_critical=3600, concurrency=2, nice=10,
)  # fmt: skip


@pytest.mark.parametrize(
    "task_name",
    [
        "thumbnails.tasks.rendition_generate",
        "thumbnails.tasks.pending_sweep",
        "purge.tasks.purge_run",
        "jobs.tasks.alerts_check",
        "celery.backend_cleanup",
        "someapp.tasks.nobody_routed_this",
    ],
)
def test_queue_for_agrees_with_celerys_own_router(task_name: str) -> None:
    """The time limits follow queue_for; Celery publishes by its router: the two must never disagree."""
    celerys = app.amqp.router.route({}, task_name)["queue"].name
    assert queue_for(task_name, settings.KILN_QUEUES, settings.CELERY_TASK_DEFAULT_QUEUE) == celerys


def test_an_exact_route_wins_over_a_pattern_as_in_celery() -> None:
    emails = dataclasses.replace(DEFAULT, name="emails", routes=("thumbnails.tasks.mail_owner",), nice=5)
    queues = (HIGH, DEFAULT, emails)
    assert queue_for("thumbnails.tasks.mail_owner", queues, "default") == "emails"
    assert queue_for("thumbnails.tasks.other", queues, "default") == "high"
    assert celery_routes(queues)["thumbnails.tasks.mail_owner"] == {"queue": "emails"}


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


def test_a_new_queue_gets_its_own_limits(settings) -> None:
    emails = dataclasses.replace(
        DEFAULT, name="emails", routes=("mail.*",), time_limit=30, soft_time_limit=25
    )
    settings.KILN_QUEUES = (*settings.KILN_QUEUES, emails)
    assert QueueTimeLimits().annotate(SimpleNamespace(name="mail.tasks.send"))["time_limit"] == 30


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "High Queue"}, "a name is lower-case letters"),
        ({"concurrency": 2}, "either concurrency or autoscale"),
        ({"autoscale": (5, 2)}, "1 <= minimum <= maximum"),
        ({"soft_time_limit": 120}, "soft time limit must be below the hard one"),
        ({"wait_warning": 400}, "at most wait_critical"),
        ({"nice": 20}, "nice must be between 0 and 19"),
    ],
)
def test_a_declaration_that_cannot_work_stops_start_up(changes: dict, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        dataclasses.replace(HIGH, **changes)


def test_two_queues_of_one_name_or_one_route_to_two_queues_stop_start_up() -> None:
    with pytest.raises(ImproperlyConfigured, match="declared twice: high"):
        queues_check((HIGH, DEFAULT, HIGH), default="default")
    with pytest.raises(ImproperlyConfigured, match=r"routed to two queues: thumbnails\.\*"):
        queues_check((HIGH, dataclasses.replace(DEFAULT, routes=("thumbnails.*",))), default="default")
    with pytest.raises(ImproperlyConfigured, match="the default queue 'default' is not declared"):
        queues_check((HIGH,), default="default")


def test_the_environment_sizes_each_pool_and_sets_the_waits() -> None:
    high, default = env_queues(
        {
            "KILN_HIGH_MIN_PROCESSES": "1",
            "KILN_HIGH_MAX_PROCESSES": "4",
            "KILN_DEFAULT_CONCURRENCY": "3",
            "KILN_QUEUE_WAITS": "high=30",
            "KILN_QUEUE_WAITS_CRITICAL": "default=7200",
        },
        (HIGH, DEFAULT),
        cores=64,
    )
    assert (high.autoscale, high.wait_warning, high.wait_critical) == ((1, 4), 30, 300)
    assert (default.concurrency, default.wait_warning, default.wait_critical) == (3, 900, 7200)
    assert high.pool_variables() == {"KILN_HIGH_MIN_PROCESSES": 1, "KILN_HIGH_MAX_PROCESSES": 4}
    assert default.pool_variables() == {"KILN_DEFAULT_CONCURRENCY": 3}


def test_a_maximum_below_the_declared_minimum_lowers_the_minimum_with_it() -> None:
    (high,) = env_queues({"KILN_HIGH_MAX_PROCESSES": "1"}, (HIGH,), cores=64)
    assert high.autoscale == (1, 1)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KILN_QUEUE_WAITS": "hihg=60"}, "KILN_QUEUE_WAITS names queues that are not declared: hihg"),
        ({"KILN_QUEUE_WAITS": "high=600"}, "KILN_QUEUE_WAITS for high .600 s. must not exceed"),
        ({"KILN_HIGH_MIN_PROCESSES": "12"}, "KILN_HIGH_MIN_PROCESSES must be at most 10"),
        ({"KILN_DEFAULT_CONCURRENCY": "0"}, "KILN_DEFAULT_CONCURRENCY must be at least 1"),
    ],
)
def test_a_bad_override_stops_start_up_naming_the_variable(environ: dict, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        env_queues(environ, (HIGH, DEFAULT), cores=64)


@pytest.mark.parametrize(("cores", "maximum"), [(1, 2), (2, 4), (3, 6), (5, 10), (64, 10)])
def test_a_cpu_bound_pools_ceiling_is_twice_the_cores_at_most_the_declared_maximum(
    cores: int, maximum: int
) -> None:
    """Never below the declared minimum (one core still gets 2), never above the declared 10."""
    (high,) = env_queues({}, (dataclasses.replace(HIGH, per_core=2),), cores=cores)
    assert high.autoscale == (2, maximum)
    (declared,) = env_queues({}, (HIGH,), cores=cores)  # not CPU-bound: the declared range whatever the cores
    assert declared.autoscale == (2, 10)


def test_the_environment_overrides_the_ceiling_the_cores_give() -> None:
    cpu_bound = dataclasses.replace(HIGH, per_core=2)
    (high,) = env_queues({"KILN_HIGH_MAX_PROCESSES": "10"}, (cpu_bound,), cores=2)
    assert high.autoscale == (2, 10)


@pytest.mark.parametrize(("nice", "weight"), [(0, 100), (5, 33), (10, 11), (15, 4), (19, 1)])
def test_a_pools_cpu_weight_is_its_nice_levels_kernel_weight_against_the_webs_100(
    nice: int, weight: int
) -> None:
    assert dataclasses.replace(DEFAULT, nice=nice).cpu_weight == weight


@pytest.mark.parametrize("changes", [{"per_core": 0}, {"per_core": 2, "autoscale": None, "concurrency": 2}])
def test_per_core_is_a_positive_number_of_an_autoscaling_pool(changes: dict) -> None:
    with pytest.raises(ImproperlyConfigured, match="per_core is a positive number of an autoscaling pool"):
        dataclasses.replace(HIGH, **changes)
