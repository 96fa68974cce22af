"""Kiln's queues, declared once (`KILN_QUEUES` in config/settings.py), and everything that follows from them.

Each queue has its own pool of worker processes, consuming that queue only, so a queue's jobs can never take
a process another queue needs. A declaration names the queue, the tasks routed to it, their time limits, how
long its oldest job may wait before the queue is `warning` or `critical`, the size of its pool (fixed, or an
autoscale range, whose ceiling follows the cores for CPU-bound work) and the pool's nice level. From it
follow: Celery's queues and routes, each task's time limits, the health thresholds, the alerts and Prometheus
rules, the dashboard, the variables `manage.py kiln run` hands supervisord, and what `manage.py kiln check`
demands of the process files.

Pure code: settings build the declaration (config/env.py applies the environment's overrides), the rest
reads it from `settings.KILN_QUEUES`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# The kernel's CPU weight of each nice level, 0 to 19 (sched_prio_to_weight in kernel/sched/core.c): each
# level is about 10 % less CPU than the one before when processes compete. Nice 0 is 1024.
NICE_WEIGHTS = (1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15)


@dataclass(frozen=True)
class QueueSpec:
    """One queue and the pool that consumes it."""

    name: str
    # Task names routed here, exact or with `*` as Celery's task_routes take them ("thumbnails.*").
    routes: tuple[str, ...]
    # Hard and soft time limits of every task routed here, in seconds; the soft one leaves time to clean up.
    time_limit: int
    soft_time_limit: int
    # Seconds the queue's oldest job may wait: above the first the queue is `warning` and an alert is mailed
    # (Horizon's `waits`), above the second it is `critical`.
    wait_warning: int
    wait_critical: int
    # The pool: a fixed number of processes, or an autoscale range (minimum, maximum).
    concurrency: int | None = None
    autoscale: tuple[int, int] | None = None
    # The pool's CPU priority (nice(1)): 0 is the web's. A pool of CPU-bound work people wait for runs
    # below the web (or a saturated pool makes every page wait for a core), maintenance lower still.
    nice: int = 0
    # CPU-bound work: an autoscaling pool's default ceiling is at most this many processes a core (more
    # add contention, not throughput). None: the ceiling is the declared maximum whatever the cores.
    per_core: int | None = None

    def __post_init__(self) -> None:
        where = f"KILN_QUEUES: queue {self.name!r}"
        if not NAME.match(self.name):
            raise ImproperlyConfigured(f"{where}: a name is lower-case letters, digits, - and _")
        if (self.concurrency is None) == (self.autoscale is None):
            raise ImproperlyConfigured(f"{where}: give either concurrency or autoscale (minimum, maximum)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ImproperlyConfigured(f"{where}: concurrency must be at least 1")
        if self.autoscale is not None and not 1 <= self.autoscale[0] <= self.autoscale[1]:
            raise ImproperlyConfigured(
                f"{where}: autoscale must be (minimum, maximum) with 1 <= minimum <= maximum"
            )
        if not 0 < self.soft_time_limit < self.time_limit:
            raise ImproperlyConfigured(f"{where}: the soft time limit must be below the hard one")
        if not 0 < self.wait_warning <= self.wait_critical:
            raise ImproperlyConfigured(f"{where}: wait_warning must be positive and at most wait_critical")
        if not 0 <= self.nice <= 19:
            raise ImproperlyConfigured(f"{where}: nice must be between 0 and 19")
        if self.per_core is not None and (self.autoscale is None or self.per_core < 1):
            raise ImproperlyConfigured(f"{where}: per_core is a positive number of an autoscaling pool")

    @property
    def pool(self) -> str:
        """The pool's name: its workers are `<pool>@<host>` and its supervisord program `worker-<pool>`."""
        return self.name

    @property
    def cpu_weight(self) -> int:
        """systemd's CPUWeight= with the CPU share of the pool's nice level: under systemd each unit is its
        own cgroup and Nice= orders processes only inside it, so the units compete by weight (100: the
        web's, systemd's default). The kernel's weight of the nice level, scaled as cgroups scale it."""
        return max(1, round(NICE_WEIGHTS[self.nice] * 100 / 1024))

    def process_ceiling(self, cores: int) -> int:
        """The most processes an autoscaling pool grows to by default on a machine with `cores` cores: the
        declared maximum, for CPU-bound work at most per_core a core (and never below the minimum)."""
        assert self.autoscale is not None, "a fixed pool has no ceiling"
        minimum, maximum = self.autoscale
        if self.per_core is None:
            return maximum
        return max(minimum, min(maximum, self.per_core * cores))

    @property
    def variable_prefix(self) -> str:
        """`KILN_HIGH_`: the prefix of the variables that size this queue's pool."""
        return "KILN_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper()) + "_"

    def pool_variables(self) -> dict[str, int]:
        """The variables `manage.py kiln run` hands supervisord for this pool, with their values."""
        if self.autoscale is not None:
            return {
                f"{self.variable_prefix}MIN_PROCESSES": self.autoscale[0],
                f"{self.variable_prefix}MAX_PROCESSES": self.autoscale[1],
            }
        assert self.concurrency is not None
        return {f"{self.variable_prefix}CONCURRENCY": self.concurrency}


def queues_check(queues: Sequence[QueueSpec], default: str) -> tuple[QueueSpec, ...]:
    names = [queue.name for queue in queues]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImproperlyConfigured(f"KILN_QUEUES: declared twice: {', '.join(duplicates)}")
    if default not in names:
        raise ImproperlyConfigured(f"KILN_QUEUES: the default queue {default!r} is not declared")
    routed = [route for queue in queues for route in queue.routes]
    twice = sorted({route for route in routed if routed.count(route) > 1})
    if twice:
        raise ImproperlyConfigured(f"KILN_QUEUES: routed to two queues: {', '.join(twice)}")
    return tuple(queues)


def celery_queues(queues: Iterable[QueueSpec]) -> tuple[Queue, ...]:
    return tuple(Queue(queue.name, routing_key=queue.name) for queue in queues)


def celery_routes(queues: Iterable[QueueSpec]) -> dict[str, dict[str, str]]:
    return {route: {"queue": queue.name} for queue in queues for route in queue.routes}


def queue_for(task_name: str, queues: Sequence[QueueSpec], default: str) -> str:
    """The queue a task is routed to, as Celery's router decides it from `celery_routes`: an exact name
    first, then the first pattern that matches, else the default queue."""
    for queue in queues:
        if task_name in queue.routes:
            return queue.name
    for queue in queues:
        if any("*" in route and fnmatch.fnmatchcase(task_name, route) for route in queue.routes):
            return queue.name
    return default


def spec_of(name: str, queues: Iterable[QueueSpec]) -> QueueSpec | None:
    return next((queue for queue in queues if queue.name == name), None)


def longest_time_limit(queues: Iterable[QueueSpec]) -> int:
    return max((queue.time_limit for queue in queues), default=0)


class QueueTimeLimits:
    """Task annotation (CELERY_TASK_ANNOTATIONS): each task gets the time limits of the queue it is routed
    to, so a task moved to another queue changes its limits with it and no task module repeats them."""

    def annotate(self, task: object) -> dict[str, int] | None:
        from django.conf import settings

        name = getattr(task, "name", "")
        queue = spec_of(
            queue_for(name, settings.KILN_QUEUES, settings.CELERY_TASK_DEFAULT_QUEUE), settings.KILN_QUEUES
        )
        if queue is None:
            return None
        return {
            "time_limit": queue.time_limit,
            "soft_time_limit": queue.soft_time_limit,
            # The delay of a retry after the worker was lost (and of a `self.retry()` without countdown).
            "default_retry_delay": settings.KILN_WORKER_LOST_RETRY_SECONDS,
        }
