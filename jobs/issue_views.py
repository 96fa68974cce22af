"""/admin/jobs/issues/: the failed jobs grouped into issues (jobs/issues.py), inside the admin's look like
the dashboard; an issue's page, and Retry all and Forget all with a page that says what they would touch
before they do it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from config.formatting import count_of, moment_words
from jobs import selectors, services
from jobs.dashboard import RETRY_ALL_LIMIT, dashboard_permission
from jobs.issues import FINGERPRINT

ISSUE_JOBS_SHOWN = 50


def _moment(moment: datetime | None) -> str:
    return moment_words(timezone.localtime(moment)) if moment else "—"


def _facts(issue: selectors.Issue) -> dict[str, Any]:
    return {
        "issue": issue,
        "queues": " · ".join(f"{queue} {count:,}" for queue, count in issue.queues.items()),
        "first_seen": _moment(issue.first_seen),
        "last_seen": _moment(issue.last_seen),
    }


def _issue_or_404(fingerprint: str) -> selectors.Issue:
    issue = selectors.issue(_fingerprint_or_404(fingerprint))
    if issue is None:
        raise Http404("No failed job left in this issue.")
    return issue


def _fingerprint_or_404(fingerprint: str) -> str:
    # Checked before any query: whatever else the address holds is never sent to the database.
    if not FINGERPRINT.fullmatch(fingerprint):
        raise Http404("Not an issue's fingerprint.")
    return fingerprint


@require_GET
@dashboard_permission
def issue_list(request: HttpRequest) -> HttpResponse:
    found = selectors.issues(limit=selectors.ISSUES_LIMIT + 1)
    context = {
        **admin.site.each_context(request),
        "title": "Issues",
        "rows": [_facts(issue) for issue in found[: selectors.ISSUES_LIMIT]],
        "more": len(found) > selectors.ISSUES_LIMIT,
        "limit": selectors.ISSUES_LIMIT,
    }
    return TemplateResponse(request, "admin/jobs/issues.html", context)


@require_GET
@dashboard_permission
def issue_detail(request: HttpRequest, fingerprint: str) -> HttpResponse:
    issue = _issue_or_404(fingerprint)
    jobs = (
        selectors.issue_jobs(fingerprint)
        .defer("args", "kwargs", "traceback")
        .order_by("-finished_at", "-id")[:ISSUE_JOBS_SHOWN]
    )
    context = {
        **admin.site.each_context(request),
        "title": issue.title,
        **_facts(issue),
        "jobs": [(job, _moment(job.finished_at)) for job in jobs],
        "jobs_shown": ISSUE_JOBS_SHOWN,
        "can_retry": request.user.has_perm("jobs.retry_job"),
    }
    return TemplateResponse(request, "admin/jobs/issue.html", context)


def _confirmed(request: HttpRequest, fingerprint: str, action: str) -> HttpResponse:
    """GET: what the action would touch, and a button; POST: the action. Either needs `jobs.retry_job`,
    as the same verbs on single jobs do."""
    if not request.user.has_perm("jobs.retry_job"):
        raise PermissionDenied
    _fingerprint_or_404(fingerprint)
    if request.method == "POST":
        try:
            level, text = _perform(request, fingerprint, action)
            messages.add_message(request, level, text)
        except services.OperationRefused as error:  # another operator dealt with the issue meanwhile
            messages.error(request, str(error))
        if selectors.issue_jobs(fingerprint).exists():
            return redirect("jobs:issue", fingerprint=fingerprint)
        return redirect("jobs:issues")
    issue = _issue_or_404(fingerprint)
    context = {
        **admin.site.each_context(request),
        "title": f"{action.capitalize()} the jobs of this issue?",
        **_facts(issue),
        "action": action,
    }
    if action == "retry":
        retryable, refused = selectors.issue_retry_preview(fingerprint)
        context.update(
            retryable=retryable,
            refused=refused,
            limit=RETRY_ALL_LIMIT,
            retried_now=min(retryable, RETRY_ALL_LIMIT),
        )
    return TemplateResponse(request, "admin/jobs/issue_confirm.html", context)


def _perform(request: HttpRequest, fingerprint: str, action: str) -> tuple[int, str]:
    if action == "forget":
        forgotten = services.issue_forget(fingerprint=fingerprint, user=request.user)
        return messages.SUCCESS, f"{count_of(forgotten, 'failed job')} forgotten."
    result = services.issue_retry(fingerprint=fingerprint, user=request.user, limit=RETRY_ALL_LIMIT)
    words = [f"{count_of(len(result.retried), 'job')} published again."]
    for reason, count in Counter(reason for _job, reason in result.refused).items():
        words.append(f"{count_of(count, 'job')} not retried: {reason}.")
    left = selectors.issue_retry_preview(fingerprint)[0] if result.retried else 0
    if left:
        words.append(
            f"{left:,} more: press Retry all again (at most {RETRY_ALL_LIMIT} at a time from here), or "
            f"`manage.py jobs retry --issue {fingerprint}`."
        )
    return (messages.SUCCESS if result.retried else messages.WARNING), " ".join(words)


@require_http_methods(["GET", "POST"])
@dashboard_permission
def issue_retry(request: HttpRequest, fingerprint: str) -> HttpResponse:
    return _confirmed(request, fingerprint, "retry")


@require_http_methods(["GET", "POST"])
@dashboard_permission
def issue_forget(request: HttpRequest, fingerprint: str) -> HttpResponse:
    return _confirmed(request, fingerprint, "forget")
