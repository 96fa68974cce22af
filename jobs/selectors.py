"""Reads: one snapshot of the queues, workers and job history, used by `jobs status`/`health`, the
dashboard, /metrics and the alert check alike."""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import CharField, Count, F, Func, Q, QuerySet
from django.db.models.lookups import Exact
from django.utils import timezone
from kombu.exceptions import OperationalError

from broker import queues as broker_queues
from jobs import health
from jobs.arguments import argument_patterns
from jobs.health import QueueState
from jobs.models import Job
from jobs.rejections import Rejections, rejections_as_dict, rejections_read

REPORT_TIMEOUT = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    hostname: str
    pool: str
    configured_queues: tuple[str, ...]
    consuming: tuple[str, ...]
    processes: int
    autoscale: tuple[int, int] | None
    active: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    taken_at: float
    broker_ok: bool
    queues: tuple[QueueState, ...]
    workers: tuple[WorkerInfo, ...]
    failed: int
    health: health.SystemHealth
    thresholds: health.Thresholds
    pools: dict[str, list[WorkerInfo]] = field(default_factory=dict)
    # Inputs the workers refused: shown beside the failed jobs, never counted in them or in `health`.
    rejections: Rejections = field(default_factory=Rejections)


def queue_names() -> list[str]:
    """The declared queues (KILN_QUEUES), in their order."""
    return [queue.name for queue in settings.KILN_QUEUES]


def failed_jobs() -> QuerySet[Job]:
    """Failed jobs an operator still has to deal with: not retried (a retry links a new job) or forgotten."""
    return Job.objects.filter(state=Job.State.FAILED, retried_at__isnull=True)


def jobs_search(
    *,
    task: str | None = None,
    state: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    argument: str | None = None,
) -> QuerySet[Job]:
    """The job history, newest first, narrowed by whatever is given: the task, state and queue exactly,
    published at or after `since` and before `until`, and an argument by whole value (jobs/arguments.py):
    12 finds [12], ["12"] and {"image_id": 12}, never [123] or [412]."""
    jobs = Job.objects.order_by("-id")
    ranged = since is not None or until is not None
    if ranged:
        # Newest by publish time, which the range leaves no job without: the databases then walk the
        # published_at index from the range's end and stop at the page's last job. Ordered by id they walk
        # every newer job first when the range lies days back.
        jobs = jobs.order_by("-published_at", "-id")
    for column, value in (("task_name", task), ("state", state), ("queue", queue)):
        if value:
            jobs = jobs.filter(column_is(column, value, in_time_range=ranged))
    if since is not None:
        jobs = jobs.filter(published_at__gte=since)
    if until is not None:
        jobs = jobs.filter(published_at__lt=until)
    if argument is not None and argument.strip():
        jobs = jobs.filter(argument_matches(argument))
    return jobs


def column_is(column: str, value: str, *, in_time_range: bool) -> Q | Exact:
    """column = value; within a time range on SQLite, through the time index rather than the column's.

    Task, state and queue hold a handful of values each. SQLite keeps no statistics unless ANALYZE is run
    (Kiln never runs it), so its planner takes any equality on an indexed column for a few rows and
    prefers it to a range: for "rendition_generate, succeeded, one hour three days ago" it walked 600,000
    succeeded jobs and sorted them (0.35 s on 1,000,000) instead of the hour's 6,000 (2 ms). A unary +
    is SQLite's documented way to keep a term from using an index. PostgreSQL's statistics choose well.
    """
    if in_time_range and connection.vendor == "sqlite":
        return Exact(Func(F(column), template="+%(expressions)s", output_field=CharField()), value)
    return Q(**{column: value})


def argument_matches(value: str) -> Q:
    """Jobs with `value` among their arguments' values.

    Asked as `id IN (SELECT id … WHERE argument_values LIKE …)`: SQLite then reads the column from its
    index (migration 0006), a tenth of the table's pages, instead of every row; PostgreSQL reads the
    trigram index either way.
    """
    holding = reduce(
        operator.or_, (Q(argument_values__holds=pattern) for pattern in argument_patterns(value))
    )
    return Q(pk__in=Job.objects.filter(holding).values("pk"))


def workers_report(timeout: float = REPORT_TIMEOUT) -> list[WorkerInfo]:
    try:
        replies = current_app.control.broadcast("kiln_report", reply=True, timeout=timeout) or []
    except (OSError, OperationalError) as error:
        raise broker_queues.BrokerUnavailable(str(error)) from error
    workers = []
    for reply in replies:
        for hostname, report in reply.items():
            if not isinstance(report, dict) or "pool" not in report:
                continue  # a worker without Kiln's control commands
            workers.append(
                WorkerInfo(
                    hostname=hostname,
                    pool=report["pool"],
                    configured_queues=tuple(report.get("configured_queues") or ()),
                    consuming=tuple(report.get("consuming") or ()),
                    processes=int(report.get("processes") or 0),
                    autoscale=tuple(report["autoscale"]) if report.get("autoscale") else None,  # type: ignore[arg-type]
                    active=dict(report.get("active") or {}),
                )
            )
    return sorted(workers, key=lambda worker: worker.hostname)


def finished_counts(since: timedelta) -> dict[str, dict[str, int]]:
    rows = (
        Job.objects.filter(
            finished_at__gte=timezone.now() - since, state__in=[Job.State.SUCCEEDED, Job.State.FAILED]
        )
        .values("queue")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(state=Job.State.FAILED)))
    )
    return {row["queue"]: {"total": row["total"], "failed": row["failed"]} for row in rows}


_last: tuple[float, Snapshot] | None = None


def snapshot_cached(max_age: float = 2.0) -> Snapshot:
    """The same snapshot for every caller within `max_age` seconds (per process): several open dashboards
    and a Prometheus scrape then cost one broadcast to the workers, not one each."""
    global _last
    if _last is None or time.monotonic() - _last[0] > max_age:
        _last = (time.monotonic(), snapshot())
    return _last[1]


def snapshot(*, report_timeout: float = REPORT_TIMEOUT) -> Snapshot:
    names = queue_names()
    taken_at = time.time()
    try:
        depths = broker_queues.queue_depths(names)
        paused = broker_queues.paused_queues()
        broker_ok = True
        workers = workers_report(report_timeout)
    except broker_queues.BrokerUnavailable:
        depths, paused, broker_ok, workers = {}, set(), False, []
    minute = finished_counts(timedelta(minutes=1))
    hour = finished_counts(timedelta(hours=1))
    queues = []
    for name in names:
        depth, oldest_published_at = depths.get(name, (None, None))
        queues.append(
            QueueState(
                name=name,
                depth=depth,
                oldest_wait=None if oldest_published_at is None else max(taken_at - oldest_published_at, 0.0),
                paused=name in paused,
                workers=sum(1 for worker in workers if name in worker.configured_queues),
                running=sum(worker.active.get(name, 0) for worker in workers),
                finished_minute=minute.get(name, {}).get("total", 0),
                finished_hour=hour.get(name, {}).get("total", 0),
                failed_hour=hour.get(name, {}).get("failed", 0),
            )
        )
    failed = failed_jobs().count()
    thresholds = health.Thresholds.from_settings()
    result = health.system_health(queues, broker_ok=broker_ok, failed=failed, thresholds=thresholds)
    pools: dict[str, list[WorkerInfo]] = {}
    for worker in workers:
        pools.setdefault(worker.pool, []).append(worker)
    return Snapshot(
        taken_at,
        broker_ok,
        tuple(queues),
        tuple(workers),
        failed,
        result,
        thresholds,
        pools,
        rejections_read(),
    )


def snapshot_as_dict(snap: Snapshot) -> dict[str, Any]:
    """The JSON shape shared by `jobs status --json`, `jobs health --json` and the dashboard."""
    by_name = {queue.name: queue for queue in snap.health.queues}
    return {
        "taken_at": snap.taken_at,
        "level": snap.health.level,
        "broker": "reachable" if snap.broker_ok else "unreachable",
        "failed": snap.failed,
        "rejected_inputs": rejections_as_dict(snap.rejections),
        "reasons": list(snap.health.reasons),
        "queues": [
            {
                "name": queue.name,
                "level": by_name[queue.name].level,
                "worker_status": by_name[queue.name].worker_status,
                "reasons": list(by_name[queue.name].reasons),
                "depth": queue.depth,
                "oldest_wait": None if queue.oldest_wait is None else round(queue.oldest_wait, 1),
                "paused": queue.paused,
                "workers": queue.workers,
                "running": queue.running,
                "throughput_minute": queue.finished_minute,
                "throughput_hour": queue.finished_hour,
                "failed_hour": queue.failed_hour,
                "failure_rate": None if queue.failure_rate is None else round(queue.failure_rate, 4),
                "wait_warning": snap.thresholds.waits.get(queue.name),
                "wait_critical": snap.thresholds.waits_critical.get(queue.name),
            }
            for queue in snap.queues
        ],
        "pools": {
            pool: [
                {
                    "hostname": worker.hostname,
                    "processes": worker.processes,
                    "autoscale": list(worker.autoscale) if worker.autoscale else None,
                    "consuming": list(worker.consuming),
                    "running": sum(worker.active.values()),
                }
                for worker in workers
            ]
            for pool, workers in sorted(snap.pools.items())
        },
    }
