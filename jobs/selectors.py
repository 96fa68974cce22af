"""Reads: one snapshot of the queues, workers and job history, used by `jobs status`/`health`, the
dashboard, /metrics and the alert check alike."""

from __future__ import annotations

import json
import operator
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import CharField, Count, F, Func, Max, Min, Q, QuerySet
from django.db.models.lookups import Exact
from django.utils import timezone
from kombu.exceptions import OperationalError

from broker import queues as broker_queues
from jobs import health
from jobs.arguments import argument_patterns
from jobs.health import QueueState
from jobs.issues import message_normalised
from jobs.models import Job
from jobs.rejections import Rejections, rejections_as_dict, rejections_read
from jobs.schedules import Entry, JobFacts, ScheduleState, schedule_state
from mediastore import store as media_store
from outbox.selectors import Backlog
from outbox.selectors import backlog as outbox_backlog

REPORT_TIMEOUT = 1.0
# The latest jobs of a beat entry read to judge it: enough to follow a queue that stopped taking an
# every-minute entry back for 20 minutes (past any default grace).
SCHEDULE_JOBS = 20


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
    # Every beat entry, judged (jobs/schedules.py): a late one is a `warning` in `health`, and an alert.
    schedules: tuple[ScheduleState, ...] = ()
    # Tasks the outbox has not published yet (a broker outage): old ones are a `warning` in `health`.
    outbox: Backlog = field(default_factory=lambda: Backlog(0, None))


def queue_names() -> list[str]:
    """The declared queues (KILN_QUEUES), in their order."""
    return [queue.name for queue in settings.KILN_QUEUES]


def failed_jobs() -> QuerySet[Job]:
    """Failed jobs an operator still has to deal with: not retried (a retry links a new job) or forgotten."""
    return Job.objects.filter(state=Job.State.FAILED, retried_at__isnull=True)


@dataclass(frozen=True)
class Issue:
    """Failed jobs an operator still has to deal with that failed the same way in the same place: the same
    fingerprint (jobs/issues.py), so the same task and exception type."""

    fingerprint: str
    count: int
    # Jobs per declared queue that has any, in the declared order; "other" for an undeclared or unknown one.
    queues: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    # The latest of its jobs.
    sample: Job

    @property
    def title(self) -> str:
        """The exception type and the message as every job of the issue has it: "ValueError: image <n>"."""
        message = message_normalised(self.sample.exception_message)
        return f"{self.sample.exception_type}: {message}" if message else self.sample.exception_type


ISSUES_LIMIT = 200


def issue_jobs(fingerprint: str) -> QuerySet[Job]:
    return failed_jobs().filter(fingerprint=fingerprint)


def issues(*, limit: int = ISSUES_LIMIT) -> list[Issue]:
    """The issues of the failed list, the one seen last first, at most `limit`: one GROUP BY, then one
    query for the samples, whose tracebacks are not loaded (up to 20 kB each; `issue()` has its own)."""
    rows = list(
        # A row written by hand, not by the history, has no fingerprint and belongs to no issue.
        failed_jobs()
        .exclude(fingerprint="")
        .values("fingerprint")
        .annotate(**_figures())
        .order_by(F("last_seen").desc(nulls_last=True), "fingerprint")[:limit]
    )
    if not rows:
        return []
    # Each issue's latest job is the one that finished at its last_seen: an index seek per issue on
    # (fingerprint, finished_at). A correlated subquery in the GROUP BY would be grouped by too, and run
    # once per row instead of once per issue.
    latest = Q()
    for row in rows:
        latest |= Q(fingerprint=row["fingerprint"], finished_at=row["last_seen"])
    samples: dict[str, Job] = {}
    # Not through failed_jobs(): told state = 'failed' too, SQLite walks every failed job by the state index
    # instead. A retried job that finished in the same microsecond as the last open one is skipped here.
    for job in Job.objects.filter(latest).defer("args", "kwargs", "traceback").order_by("id"):
        if job.state == Job.State.FAILED and job.retried_at is None:
            samples[job.fingerprint] = job  # the highest id of a tie
    return [
        _issue(row["fingerprint"], row, samples[row["fingerprint"]])
        for row in rows
        if row["fingerprint"] in samples  # else retried or forgotten between the two queries
    ]


def issue(fingerprint: str) -> Issue | None:
    """One issue with its latest job's traceback, or None if none of its jobs is in the failed list. Two
    queries by the (fingerprint, finished_at) index: SQLite plans a GROUP BY on the state index instead."""
    jobs = issue_jobs(fingerprint)
    sample = jobs.order_by(F("finished_at").desc(nulls_last=True), "-id").first()
    if sample is None:
        return None
    return _issue(fingerprint, jobs.aggregate(**_figures()), sample)


def _figures() -> dict[str, Any]:
    """An issue's figures as aggregates. Each declared queue is a filtered count (they are few), so the
    queues are counted in the same pass and the database can sort and cut the list."""
    return {
        "count": Count("id"),
        "first_seen": Min("finished_at"),
        "last_seen": Max("finished_at"),
        **{f"queue_{index}": Count("id", filter=Q(queue=name)) for index, name in enumerate(queue_names())},
    }


def _issue(fingerprint: str, figures: dict[str, Any], sample: Job) -> Issue:
    queues = {
        name: figures[f"queue_{index}"]
        for index, name in enumerate(queue_names())
        if figures[f"queue_{index}"]
    }
    if other := figures["count"] - sum(queues.values()):
        queues["other"] = other
    return Issue(
        fingerprint=fingerprint,
        count=figures["count"],
        queues=queues,
        first_seen=figures["first_seen"],
        last_seen=figures["last_seen"],
        sample=sample,
    )


def issue_retry_preview(fingerprint: str) -> tuple[int, int]:
    """How many of an issue's jobs a retry would publish, and how many it would refuse: those whose
    arguments were not kept (services.jobs_retry)."""
    counts = issue_jobs(fingerprint).aggregate(
        retryable=Count("id", filter=Q(args_truncated=False)),
        refused=Count("id", filter=Q(args_truncated=True)),
    )
    return counts["retryable"], counts["refused"]


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

    Asked as `id IN (SELECT id … WHERE <argument_values holds …>)`: SQLite then reads the column from its
    own index (migration 0006) instead of every row of the table, 0.09 s against 0.24 on 1,000,000 jobs;
    PostgreSQL reads its trigram index either way.
    """
    holding = reduce(
        operator.or_, (Q(argument_values__holds=pattern) for pattern in argument_patterns(value))
    )
    return Q(pk__in=Job.objects.filter(holding).values("pk"))


def workers_report(timeout: float = REPORT_TIMEOUT) -> list[WorkerInfo]:
    # The transport's own errors too: Redis closing the connection while the replies are read raises
    # redis' ConnectionError, which is no OSError; the page or scrape then says "broker unreachable"
    # instead of failing with a 500.
    with current_app.connection_for_read() as connection:
        lost = (OSError, OperationalError, *connection.connection_errors, *connection.channel_errors)
    try:
        replies = current_app.control.broadcast("kiln_report", reply=True, timeout=timeout) or []
    except lost as error:
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


def _entry_arguments(text: str | None, empty: Any) -> Any:
    try:
        return json.loads(text or "null") or empty
    except ValueError:
        return None  # beat disables such an entry; its jobs are then matched by task name alone


def schedule_jobs(task: str, args: Any, kwargs: Any) -> list[JobFacts]:
    """The latest jobs of a beat entry, newest first: its task, with its arguments (two entries may run one
    task with different ones). A job whose arguments were too large to keep matches any entry of its task."""
    rows = (
        Job.objects.filter(task_name=task)
        .order_by(F("published_at").desc(nulls_last=True), "-id")
        .values("state", "published_at", "started_at", "finished_at", "args", "kwargs", "args_truncated")[
            :SCHEDULE_JOBS
        ]
    )
    return [
        JobFacts(row["state"], row["published_at"], row["started_at"], row["finished_at"])
        for row in rows
        if row["args_truncated"]
        or args is None
        or kwargs is None
        or (row["args"] == args and row["kwargs"] == kwargs)
    ]


def schedule_states(*, now: datetime | None = None) -> tuple[ScheduleState, ...]:
    """Every django-celery-beat entry, in name order, judged now; grace from KILN_SCHEDULE_GRACE."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    states = []
    for task in PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked").order_by(
        "name"
    ):
        if task.scheduler is None:
            continue  # django-celery-beat refuses to save an entry without a schedule
        solar = task.solar
        entry = Entry(
            name=task.name,
            task=task.task,
            # A solar schedule is not built: Celery refuses to without the `ephem` package.
            schedule=None if solar else task.schedule,
            unwatched="solar schedules (sunrise, sunset) are not watched" if solar else "",
            cadence=f"at {solar.get_event_display().lower()} ({float(solar.latitude):g}, {float(solar.longitude):g})"
            if solar
            else "",
            changed_at=task.date_changed,
            last_sent_at=task.last_run_at,
            enabled=task.enabled,
            one_off=task.one_off,
            run_count=task.total_run_count,
            start_time=task.start_time,
            expires=task.expires,
            queue=task.queue or "",
        )
        grace = settings.KILN_SCHEDULE_GRACE.get(task.name)
        states.append(
            schedule_state(
                entry,
                schedule_jobs(task.task, _entry_arguments(task.args, []), _entry_arguments(task.kwargs, {})),
                now=now,
                tz=tz,
                grace=timedelta(seconds=grace) if grace is not None else None,
                history=settings.KILN_JOB_HISTORY,
            )
        )
    return tuple(states)


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
    schedules = schedule_states()
    waiting = outbox_backlog()
    result = health.system_health(
        queues,
        broker_ok=broker_ok,
        failed=failed,
        thresholds=thresholds,
        schedules=schedules,
        media_problem=media_store.problem(deep=False),
        unpublished=waiting.unpublished,
        unpublished_oldest=waiting.oldest_age,
    )
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
        schedules,
        waiting,
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
        "outbox": {
            "unpublished": snap.outbox.unpublished,
            "oldest_age": None if snap.outbox.oldest_age is None else round(snap.outbox.oldest_age, 1),
        },
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
        "schedules": [schedule_as_dict(state) for state in snap.schedules],
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


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def schedule_as_dict(state: ScheduleState) -> dict[str, Any]:
    return {
        "name": state.name,
        "task": state.task,
        "cadence": state.cadence,
        "status": state.status,
        "late": state.late,
        "missing": state.missing
        or None,  # when late: "send" (beat sent nothing) or "start" (no worker took it)
        "reason": state.reason,
        "slot": _timestamp(state.slot),
        "due_by": _timestamp(state.due_by),
        "grace_seconds": state.grace.total_seconds() if state.grace else None,
        "last_sent_at": _timestamp(state.last_sent_at),
        "last_started_at": _timestamp(state.last_started_at),
        "last_outcome": state.last_outcome,
        "last_duration": None if state.last_duration is None else round(state.last_duration, 1),
    }
