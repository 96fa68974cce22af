"""`manage.py jobs …`: Horizon's verbs on Celery, for operators and monitors."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from broker import queues as broker_queues
from config import formatting
from config.formatting import moment_words
from jobs import selectors, services
from jobs.models import Job
from jobs.rejections import Rejections


def _wait(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class Command(BaseCommand):
    help = "Queues, workers and job history: status, health, failed jobs and the operator's verbs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser(
            "status", help="Broker, queues, workers per pool, failed jobs, rejected inputs, throughput."
        )
        status.add_argument("--json", action="store_true")

        health = sub.add_parser(
            "health", help="healthy / warning / critical, per queue and overall; late beat entries warn."
        )
        health.add_argument("--json", action="store_true")
        health.add_argument(
            "--exit-code",
            action="store_true",
            help="exit 1 on warning, 2 on critical (for cron and monitors)",
        )

        failed = sub.add_parser("failed", help="Failed jobs not yet retried or forgotten.")
        self._job_filters(failed)
        failed.add_argument("--limit", type=int, default=50)
        failed.add_argument("--traceback", action="store_true", help="print each traceback")

        issues = sub.add_parser("issues", help="Failed jobs grouped by how and where they failed.")
        issues.add_argument("--json", action="store_true")
        issues.add_argument("--limit", type=int, default=selectors.ISSUES_LIMIT)
        search = sub.add_parser(
            "search", help="The job history by task, state, queue, time and argument value, newest first."
        )
        search.add_argument("--task", help="task name, e.g. thumbnails.tasks.rendition_generate")
        search.add_argument("--state", help=f"one of {', '.join(Job.State.values)}")
        search.add_argument("--queue")
        search.add_argument(
            "--since", metavar="WHEN", help="published at or after: 30m, 2h, 7d ago, or 2026-12-03[T14:00]"
        )
        search.add_argument("--until", metavar="WHEN", help="published before: the same forms")
        search.add_argument(
            "--arg",
            dest="argument",
            metavar="VALUE",
            help='a whole argument value: 12 finds [12], ["12"] and {"image_id": 12}, never [123]; '
            "'\"12\"' the string only",
        )
        search.add_argument("--limit", type=int, default=50, help="at most this many, newest first (50)")
        search.add_argument("--json", action="store_true")

        retry = sub.add_parser("retry", help="Publish failed jobs again, with their arguments and queue.")
        retry.add_argument("ids", nargs="*", type=int, metavar="ID")
        retry.add_argument("--all", action="store_true", help="every failed job")
        retry.add_argument("--issue", metavar="FINGERPRINT", help="every job of one issue (`jobs issues`)")
        self._job_filters(retry)

        forget = sub.add_parser("forget", help="Delete failed jobs' records.")
        forget.add_argument("ids", nargs="*", type=int, metavar="ID")
        forget.add_argument("--issue", metavar="FINGERPRINT", help="every job of one issue (`jobs issues`)")

        flush = sub.add_parser("flush", help="Delete every failed job's record (or the older ones).")
        flush.add_argument("--older-than", metavar="DURATION", help="e.g. 7d, 12h")

        clear = sub.add_parser("clear", help="Drop every job waiting in one queue.")
        clear.add_argument("queue")
        clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")

        for verb, text in (
            ("pause", "The pools stop taking jobs from a queue."),
            ("resume", "They take them again."),
        ):
            sub.add_parser(verb, help=text).add_argument("queue")

        alerts = sub.add_parser(
            "alerts", help="Check the alert conditions now and mail what is due (cron watchdog)."
        )
        alerts.add_argument("--quiet", action="store_true")
        sub.add_parser("prometheus-rules", help="Print Prometheus alert rules for the current thresholds.")

        scale = sub.add_parser("scale", help="Grow or shrink a running pool (until it restarts).")
        scale.add_argument(
            "pool", help="a declared queue's pool: high, default, ... (a worker's name before @)"
        )
        scale.add_argument("processes", type=int)
        scale.add_argument("--min", type=int, dest="minimum", help="autoscaled pools: the new floor")

    @staticmethod
    def _job_filters(parser: CommandParser) -> None:
        parser.add_argument("--queue")
        parser.add_argument("--task", help="task name, e.g. thumbnails.generate")
        parser.add_argument("--error", help="text in the exception type or message")
        parser.add_argument("--since", metavar="DURATION", help="failed within, e.g. 30m, 2h, 7d")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, action.replace("-", "_"))(**options)
        except services.OperationRefused as error:
            raise CommandError(str(error)) from error
        except broker_queues.BrokerUnavailable as error:
            raise CommandError(f"the broker cannot be reached: {error}") from error

    # --- reads ----------------------------------------------------------------------------------------
    def status(self, json: bool = False, **options: Any) -> None:
        snap = selectors.snapshot()
        if json:
            self.stdout.write(_dumps(selectors.snapshot_as_dict(snap)))
            return
        write = self.stdout.write
        write(f"broker      {'reachable' if snap.broker_ok else 'UNREACHABLE'}")
        write(f"health      {snap.health.level}")
        write(f"failed      {snap.failed}")
        for line in _rejections_lines(snap.rejections):
            write(line)
        write("")
        write(
            f"{'queue':<10} {'waiting':>8} {'oldest':>7} {'running':>8} {'workers':>8} {'1 min':>6} {'1 hour':>7}  state"
        )
        for queue, result in zip(snap.queues, snap.health.queues, strict=True):
            depth = "?" if queue.depth is None else str(queue.depth)
            write(
                f"{queue.name:<10} {depth:>8} {_wait(queue.oldest_wait):>7} {queue.running:>8} "
                f"{queue.workers:>8} {queue.finished_minute:>6} {queue.finished_hour:>7}  "
                f"{result.worker_status}{' (paused)' if queue.paused and result.worker_status != 'paused' else ''}"
            )
        write("")
        if not snap.workers:
            write("workers     none answered")
        for pool, workers in sorted(snap.pools.items()):
            for worker in workers:
                scale = (
                    f" (autoscale {worker.autoscale[1]}-{worker.autoscale[0]})" if worker.autoscale else ""
                )
                write(
                    f"pool {pool:<7} {worker.hostname}: {worker.processes} processes{scale}, "
                    f"consuming {', '.join(worker.consuming) or 'nothing'}"
                )

    def health(self, json: bool = False, exit_code: bool = False, **options: Any) -> None:
        snap = selectors.snapshot()
        result = snap.health
        if json:
            self.stdout.write(_dumps(selectors.snapshot_as_dict(snap)))
        else:
            self.stdout.write(f"system: {result.level}")
            for queue in result.queues:
                reasons = f" - {'; '.join(queue.reasons)}" if queue.reasons else ""
                self.stdout.write(f"  {queue.name}: {queue.level}, {queue.worker_status}{reasons}")
            if not result.broker_ok:
                self.stdout.write("  broker: unreachable")
            if result.media_problem:
                self.stdout.write(f"  media: critical, {result.media_problem}")
            for schedule in snap.schedules:
                if schedule.late:
                    self.stdout.write(f"  schedule {schedule.name}: warning, {schedule.reason}")
            if result.failed:
                self.stdout.write(f"  failed jobs: {result.failed}")
            if snap.rejections.last_hour_total:
                self.stdout.write(
                    f"  rejected inputs in the last hour: {snap.rejections.last_hour_total} "
                    f"({_kinds(snap.rejections.last_hour)}); information, not part of the level"
                )
        if exit_code and not result.healthy:
            sys.exit(2 if result.level == "critical" else 1)

    def failed(self, limit: int, traceback: bool, **options: Any) -> None:
        jobs = self._filtered(**options)[:limit]
        for job in jobs:
            when = (
                timezone.localtime(job.finished_at).strftime("%Y-%m-%d %H:%M:%S") if job.finished_at else "-"
            )
            self.stdout.write(
                f"{job.id:>8}  {when}  {job.queue:<8} {job.task_name}  attempts={job.attempts}  "
                f"{job.exception_type}: {job.exception_message.splitlines()[0] if job.exception_message else ''}"
            )
            if traceback and job.traceback:
                self.stdout.write(job.traceback)
        if not jobs:
            self.stdout.write("no failed jobs")

    def issues(self, json: bool, limit: int, **options: Any) -> None:
        found = selectors.issues(limit=limit)
        if json:
            self.stdout.write(_dumps([_issue_as_dict(issue) for issue in found]))
            return
        if not found:
            self.stdout.write("no failed jobs")
            return
        self.stdout.write(f"{'issue':<12} {'jobs':>6}  {'task':<36} {'title':<60}  last seen")
        for issue in found:
            title = issue.title if len(issue.title) <= 60 else issue.title[:59] + "…"
            self.stdout.write(
                f"{issue.fingerprint:<12} {issue.count:>6}  {issue.sample.task_name:<36} {title:<60}  "
                f"{_moment(issue.last_seen)}"
            )

    def search(
        self,
        task: str | None,
        state: str | None,
        queue: str | None,
        since: str | None,
        until: str | None,
        argument: str | None,
        limit: int,
        json: bool,
        **options: Any,
    ) -> None:
        if state and state not in Job.State.values:
            raise CommandError(f"unknown state {state!r}: use one of {', '.join(Job.State.values)}")
        if limit < 1:
            raise CommandError("--limit must be 1 or more")
        now = timezone.now()
        jobs = list(
            selectors.jobs_search(
                task=task,
                state=state,
                queue=queue,
                since=services.moment_parse(since, now=now) if since else None,
                until=services.moment_parse(until, now=now) if until else None,
                argument=argument,
            ).defer("traceback")[:limit]
        )
        if json:
            self.stdout.write(_dumps([_job_as_dict(job) for job in jobs]))
            return
        if not jobs:
            self.stdout.write("no job matches")
            return
        self.stdout.write(
            f"{'id':>9}  {'published':<19}  {'queue':<8} {'state':<9} {'run':>9}  {'task':<36} arguments"
        )
        for job in jobs:
            published = (
                timezone.localtime(job.published_at).strftime("%Y-%m-%d %H:%M:%S")
                if job.published_at
                else "-"
            )
            self.stdout.write(
                f"{job.id:>9}  {published:<19}  {job.queue:<8} {job.state:<9} "
                f"{formatting.duration(job.run_seconds):>9}  {job.task_name:<36} {_arguments_short(job)}"
            )
        if len(jobs) == limit:
            self.stdout.write(f"the newest {limit} shown: --limit for more, or narrow the search")

    def alerts(self, quiet: bool = False, **options: Any) -> None:
        from jobs.alerts import alerts_check
        from jobs.models import Alert

        notified = alerts_check()
        if not quiet:
            for alert in Alert.objects.filter(firing=True):
                sent = " (notified now)" if alert.key in notified else ""
                self.stdout.write(f"firing  {alert.key}: {alert.message}{sent}")
            if not Alert.objects.filter(firing=True).exists():
                self.stdout.write("no alert firing")

    def prometheus_rules(self, **options: Any) -> None:
        from jobs.health import Thresholds
        from jobs.prometheus import alert_rules

        self.stdout.write(alert_rules(Thresholds.from_settings(), pools=selectors.queue_names()), ending="")

    # --- writes ---------------------------------------------------------------------------------------
    def retry(self, ids: list[int], all: bool, issue: str | None, **options: Any) -> None:
        filters = {key: options.get(key) for key in ("queue", "task", "error", "since")}
        if issue is not None:
            if ids or all or any(filters.values()):
                raise CommandError("--issue names the jobs to retry on its own: no IDs, --all or filters")
            result = services.issue_retry(fingerprint=issue)
        else:
            if not ids and not all and not any(filters.values()):
                raise CommandError(
                    "name jobs to retry: IDs, --all, --issue, --queue, --task, --error or --since"
                )
            jobs = self._filtered(**filters)
            if ids:
                jobs = jobs.filter(id__in=ids)
            description = (
                " ".join(
                    [*(str(i) for i in ids), *(f"--{key}={value}" for key, value in filters.items() if value)]
                )
                or "--all"
            )
            result = services.jobs_retry(jobs=jobs, description=description)
        for old, new in result.retried:
            self.stdout.write(f"retried job {old} as {new}")
        for job_id, reason in result.refused:
            self.stderr.write(f"job {job_id} not retried: {reason}")
        self.stdout.write(
            f"{len(result.retried)} retried, {len(result.refused)} refused{result.waiting_note}"
        )
        if result.refused:
            sys.exit(1)

    def forget(self, ids: list[int], issue: str | None, **options: Any) -> None:
        if bool(ids) == (issue is not None):
            raise CommandError("name the jobs to forget: IDs, or --issue FINGERPRINT")
        if issue is not None:
            count = services.issue_forget(fingerprint=issue)
        else:
            count = services.jobs_forget(
                jobs=Job.objects.filter(id__in=ids), description=" ".join(map(str, ids))
            )
        self.stdout.write(f"{count} failed job(s) forgotten")

    def flush(self, older_than: str | None, **options: Any) -> None:
        age = services.duration_parse(older_than) if older_than else None
        self.stdout.write(f"{services.jobs_flush(older_than=age)} failed job(s) flushed")

    def clear(self, queue: str, yes: bool, **options: Any) -> None:
        services.queue_check(queue)
        if not yes:
            depth, _oldest = broker_queues.queue_depths([queue])[queue]
            answer = input(f"Drop all {depth} jobs waiting in {queue!r}? Type the queue's name to confirm: ")
            if answer.strip() != queue:
                raise CommandError("not confirmed; nothing dropped")
        self.stdout.write(f"{services.queue_clear(queue=queue)} job(s) dropped from {queue}")

    def pause(self, queue: str, **options: Any) -> None:
        replies = services.queue_pause(queue=queue)
        told = f"{len(replies)} worker(s) told" if replies else "no worker answered"
        self.stdout.write(f"{queue} paused ({told}; workers that start later stay paused too)")

    def resume(self, queue: str, **options: Any) -> None:
        replies = services.queue_resume(queue=queue)
        self.stdout.write(f"{queue} resumed ({_replies(replies)})")

    def scale(self, pool: str, processes: int, minimum: int | None, **options: Any) -> None:
        replies = services.pool_scale(pool=pool, processes=processes, minimum=minimum)
        self.stdout.write(f"pool {pool}: {_replies(replies)}")

    # --------------------------------------------------------------------------------------------------
    def _filtered(
        self,
        queue: str | None = None,
        task: str | None = None,
        error: str | None = None,
        since: str | None = None,
        **_: Any,
    ) -> QuerySet[Job]:
        from django.db.models import Q

        jobs = selectors.failed_jobs().order_by("-finished_at", "-id")
        if queue:
            jobs = jobs.filter(queue=queue)
        if task:
            jobs = jobs.filter(task_name=task)
        if error:
            jobs = jobs.filter(Q(exception_type__icontains=error) | Q(exception_message__icontains=error))
        if since:
            jobs = jobs.filter(finished_at__gte=timezone.now() - services.duration_parse(since))
        return jobs


def _moment(moment: datetime | None) -> str:
    return moment_words(timezone.localtime(moment)) if moment else "-"


def _issue_as_dict(issue: selectors.Issue) -> dict[str, Any]:
    return {
        "fingerprint": issue.fingerprint,
        "count": issue.count,
        "task": issue.sample.task_name,
        "exception_type": issue.sample.exception_type,
        "title": issue.title,
        "queues": issue.queues,
        "first_seen": issue.first_seen.isoformat() if issue.first_seen else None,
        "last_seen": issue.last_seen.isoformat() if issue.last_seen else None,
        "latest_job": issue.sample.id,
    }


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in counts.items())


def _rejections_lines(rejections: Rejections) -> list[str]:
    total = rejections.last_hour_total
    kinds = f" ({_kinds(rejections.last_hour)})" if total else ""
    day = sum(rejections.day_by_kind.values())
    lines = [
        f"rejected    {total} inputs in the last hour{kinds}, {day} in {len(rejections.hours)} h "
        "(not job failures)"
    ]
    hours = [f"{hour.label} {hour.total}" for hour in rejections.hours if hour.total]
    if hours:
        lines.append(f"  per hour  {' · '.join(hours)}")
    return lines


def _replies(replies: list[dict]) -> str:
    if not replies:
        return "no worker answered; running workers pick the change up when they start"
    parts = []
    for reply in replies:
        for hostname, answer in reply.items():
            parts.append(
                f"{hostname}: {answer.get('ok') or answer.get('error') if isinstance(answer, dict) else answer}"
            )
    return "; ".join(parts)


ARGUMENTS_WIDTH = 60


def _arguments_short(job: Job) -> str:
    """A job's arguments as a call would write them, `734512` or `force=true, image_id=12`, cut to fit a
    line ("…" says more was there); "-" for none. Keywords sorted: PostgreSQL's jsonb keeps no order."""
    if job.args_truncated:
        return "(too large to keep)"
    parts = [json.dumps(value) for value in job.args or []]
    parts += [f"{key}={json.dumps(value)}" for key, value in sorted((job.kwargs or {}).items())]
    text = ", ".join(parts) or "-"
    return text if len(text) <= ARGUMENTS_WIDTH else text[: ARGUMENTS_WIDTH - 1] + "…"


def _job_as_dict(job: Job) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": job.id,
        "task_id": job.task_id,
        "task": job.task_name,
        "queue": job.queue,
        "state": job.state,
        "attempts": job.attempts,
        "worker": job.worker,
        "published_at": moment(job.published_at),
        "started_at": moment(job.started_at),
        "finished_at": moment(job.finished_at),
        "wait_seconds": job.wait_seconds,
        "run_seconds": job.run_seconds,
        "args": job.args,
        "kwargs": job.kwargs,
        "args_truncated": job.args_truncated,
        "exception_type": job.exception_type,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
