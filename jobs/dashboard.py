"""/admin/jobs/dashboard/: the queues at a glance, refreshed from a JSON endpoint, with the operator's verbs;
/admin/jobs/schedules/: every beat entry, when it last ran and whether it is late.

Plain Django views inside the admin's look (each_context), no front-end build step: the page polls
`data/` every few seconds and redraws; the buttons post forms (CSRF-protected) to `action/`.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from broker.queues import BrokerUnavailable
from config.formatting import duration, moment_words
from jobs import schedules as watch
from jobs import selectors, services, timelines
from jobs.models import AuditEntry, Job
from metrics import selectors as metrics

RECENT_FAILED = 15
# "Retry all" from the page publishes at most this many per click: a web request must end in time.
RETRY_ALL_LIMIT = 500


def dashboard_permission(view: Any) -> Any:
    @staff_member_required
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm("jobs.view_dashboard"):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


@require_GET
@dashboard_permission
def dashboard(request: HttpRequest) -> HttpResponse:
    window = metrics.window_named(request.GET.get("window"))
    queues = selectors.queue_names()
    context = {
        **admin.site.each_context(request),
        "title": "Jobs dashboard",
        "refresh_seconds": settings.KILN_DASHBOARD_REFRESH_SECONDS,
        "can_retry": request.user.has_perm("jobs.retry_job"),
        "can_operate": request.user.has_perm("jobs.operate_queues"),
        "queues": queues,
        # The charts are drawn once per page load; the figures above them refresh on their own.
        "window": window,
        "windows": metrics.WINDOWS.values(),
        "timelines": timelines.queues_side_by_side(window=window, queues=queues),
        "drawn_at": moment_words(timezone.localtime()),
    }
    return TemplateResponse(request, "admin/jobs/dashboard.html", context)


@require_GET
@dashboard_permission
def tasks(request: HttpRequest) -> HttpResponse:
    """Every task seen in the window with its counts and times, busiest first (Sidekiq's Metrics page)."""
    window = metrics.window_named(request.GET.get("window"))
    context = {
        **admin.site.each_context(request),
        "title": "Jobs by task",
        "window": window,
        "windows": metrics.WINDOWS.values(),
        "summaries": metrics.task_summaries(window=window),
    }
    return TemplateResponse(request, "admin/jobs/tasks.html", context)


@require_GET
@dashboard_permission
def task(request: HttpRequest, task_name: str) -> HttpResponse:
    if not metrics.task_known(task_name):
        raise Http404("No job of this task was ever counted.")
    window = metrics.window_named(request.GET.get("window"))
    data, charts = timelines.task_charts(window=window, task_name=task_name)
    total = data.total()
    context = {
        **admin.site.each_context(request),
        "title": f"Task {task_name}",
        "task_name": task_name,
        "window": window,
        "windows": metrics.WINDOWS.values(),
        "charts": charts,
        "histogram": [timelines.histogram_chart(data)],
        "summary": metrics.task_summary(task_name, total),
        "failures": sorted(total.failures.items(), key=lambda item: (-item[1], item[0])),
    }
    return TemplateResponse(request, "admin/jobs/task.html", context)


@require_GET
@dashboard_permission
def dashboard_data(request: HttpRequest) -> JsonResponse:
    data = selectors.snapshot_as_dict(selectors.snapshot_cached())
    failed = selectors.failed_jobs().order_by("-finished_at", "-id")[:RECENT_FAILED]
    data["recent_failed"] = [
        {
            "id": job.id,
            "task": job.task_name,
            "queue": job.queue,
            "error": f"{job.exception_type}: {(job.exception_message.splitlines() or [''])[0][:200]}",
            "finished_at": moment_words(timezone.localtime(job.finished_at), seconds=True)
            if job.finished_at
            else "",
            "attempts": job.attempts,
            "url": reverse("admin:jobs_failedjob_change", args=[job.id]),
        }
        for job in failed
    ]
    data["recent_audit"] = [
        {"at": timezone.localtime(entry.created_at).strftime("%H:%M:%S"), "text": str(entry)}
        for entry in AuditEntry.objects.all()[:8]
    ]
    return JsonResponse(data)


def _moment(moment: datetime | None, *, seconds: bool = True) -> str:
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return moment_words(local, seconds=seconds or bool(local.second))


def schedule_row(state: watch.ScheduleState, now: datetime) -> dict[str, Any]:
    """One beat entry as the schedules page shows it: dates in the site's format, the status in words."""
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    status, reason = state.status, state.reason
    if state.late and state.due_by:
        status = f"late since {watch.clock(state.due_by, tz, now)}"
        reason = reason.removeprefix(f"{status}: ")  # said once, in the status
    elif state.status == watch.ON_TIME and state.due_by:
        # The next run is in its own column: the status only adds when that run would be late.
        reason = f"late if not started by {watch.clock(state.due_by, tz, now)}"
    running = state.last_outcome == "started"
    return {
        "name": state.name,
        "search_url": reverse("admin:django_celery_beat_periodictask_changelist")
        + "?"
        + urlencode({"q": state.name}),
        "task": state.task,
        "cadence": state.cadence,
        "grace": duration(state.grace) if state.grace else "—",
        "last_sent": _moment(state.last_sent_at),
        "last_started": _moment(state.last_started_at),
        "outcome": "running" if running else (state.last_outcome or "—"),
        "duration": (duration(state.last_duration) + (" so far" if running else ""))
        if state.last_duration is not None
        else "—",
        "next_run": _moment(state.slot, seconds=False) if state.watched else "—",
        "status": status,
        "status_class": "kiln-" + state.status.replace(" ", "-"),
        "reason": reason,
    }


@require_GET
@dashboard_permission
def schedules(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    states = selectors.schedule_states(now=now)
    context = {
        **admin.site.each_context(request),
        "title": "Schedules",
        "rows": [schedule_row(state, now) for state in states],
        "late": sum(state.late for state in states),
        "watched": sum(state.watched for state in states),
        "history": settings.KILN_JOB_HISTORY,
    }
    return TemplateResponse(request, "admin/jobs/schedules.html", context)


ACTIONS = {
    # action: (permission, what it does)
    "retry": "jobs.retry_job",
    "retry_all": "jobs.retry_job",
    "forget": "jobs.retry_job",
    "flush": "jobs.retry_job",
    "pause": "jobs.operate_queues",
    "resume": "jobs.operate_queues",
    "clear": "jobs.operate_queues",
    "scale": "jobs.operate_queues",
}


@require_POST
@dashboard_permission
def dashboard_action(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("jobs:dashboard")
    if not request.user.has_perm(ACTIONS[action]):
        raise PermissionDenied
    try:
        messages.success(request, _perform(request, action))
    except services.OperationRefused as error:
        messages.error(request, str(error))
    except BrokerUnavailable as error:
        messages.error(request, f"The broker cannot be reached: {error}")
    except ValueError:
        messages.error(request, "The form was not filled in correctly.")
    return redirect("jobs:dashboard")


def _perform(request: HttpRequest, action: str) -> str:
    post, user = request.POST, request.user
    if action == "retry":
        job_id = int(post["job"])
        result = services.jobs_retry(
            jobs=Job.objects.filter(id=job_id), user=user, description=f"dashboard: {job_id}"
        )
        if result.refused:
            raise services.OperationRefused(f"Job {job_id} not retried: {result.refused[0][1]}")
        return f"Job {job_id} published again." if result.retried else f"Job {job_id} was already retried."
    if action == "retry_all":
        result = services.jobs_retry(
            jobs=selectors.failed_jobs(), user=user, description="dashboard: all", limit=RETRY_ALL_LIMIT
        )
        left = selectors.failed_jobs().filter(args_truncated=False).count()
        more = f" {left} more: press again, or `manage.py jobs retry --all`." if left else ""
        return f"{len(result.retried)} job(s) published again{result.waiting_note}, {len(result.refused)} refused.{more}"
    if action == "forget":
        job_id = int(post["job"])
        count = services.jobs_forget(jobs=Job.objects.filter(id=job_id), user=user, description=str(job_id))
        return f"{count} failed job forgotten."
    if action == "flush":
        if post.get("confirm") != "flush":
            raise services.OperationRefused("Type flush to confirm deleting every failed job's record.")
        return f"{services.jobs_flush(user=user)} failed job(s) flushed."
    queue = post.get("queue", "")
    if action == "pause":
        services.queue_pause(queue=queue, user=user)
        return f"Queue {queue} paused: the pools stop taking its jobs."
    if action == "resume":
        services.queue_resume(queue=queue, user=user)
        return f"Queue {queue} resumed."
    if action == "clear":
        if post.get("confirm") != queue:
            raise services.OperationRefused(f"Type the queue's name ({queue}) to confirm clearing it.")
        return f"{services.queue_clear(queue=queue, user=user)} job(s) dropped from {queue}."
    # scale
    pool, processes = post.get("pool", ""), int(post["processes"])
    services.pool_scale(pool=pool, processes=processes, user=user)
    return f"Pool {pool} scaled to {processes} processes."
