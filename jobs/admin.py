from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from broker.queues import BrokerUnavailable
from config import formatting
from jobs import selectors, services
from jobs.models import Alert, AuditEntry, FailedJob, Job
from metrics import selectors as metrics_selectors

# The admin's home page links the jobs dashboard and Flower for those who may see them.
admin.site.index_template = "admin/kiln_index.html"


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by Kiln, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- The job lists, fast on a million rows -------------------------------------------------------------
# Django's defaults read the whole history on every page: a COUNT(*) of the table beside the filtered one,
# a SELECT DISTINCT for each filter on a column (task, queue, error) and a DISTINCT over the days of
# date_hierarchy. Here the filters offer what is known without reading the jobs (the declared queues,
# the tasks and errors the metrics counted, the last days), counts stop at COUNT_LIMIT, and the search
# box looks for what an operator has in hand: an image or report id, a task id, words of an error.

COUNT_LIMIT = 1_000
SEARCH_HELP = (
    'Argument values, whole: 12 finds [12], ["12"] and {"image_id": 12}, never 123; photo.jpg; '
    'arg:"12" the string only. Also a task id, id:123 for one job, or words of an error. '
    "Task, state, queue and time: the filters."
)
_TASK_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
# The states whose records may carry an error (a queued or started job keeps its last attempt's): the
# error search reads these through the state index instead of every succeeded job's empty message.
_ERROR_STATES = (
    Job.State.FAILED,
    Job.State.RETRYING,
    Job.State.REVOKED,
    Job.State.STARTED,
    Job.State.QUEUED,
)


def search_conditions(text: str) -> list[Q]:
    """What the admin's search box means, as the alternatives any of which a job may meet (none: nothing
    can match, e.g. id:abc). Each is looked up on its own: an OR of an argument's subquery and an error
    would make PostgreSQL test every row against both."""
    text = text.strip()
    prefix, _colon, rest = text.partition(":")
    if prefix.lower() == "arg" and rest.strip():
        return [selectors.argument_matches(rest)]
    if prefix.lower() == "id":
        rest = rest.strip()
        return [Q(pk=int(rest))] if rest.isascii() and rest.isdigit() and int(rest) < 2**63 else []
    if _NUMBER.match(text):
        return [selectors.argument_matches(text)]
    if _TASK_ID.match(text):
        return [Q(task_id=text.lower()), selectors.argument_matches(text)]
    error = Q(exception_type__icontains=text) | Q(exception_message__icontains=text)
    return [selectors.argument_matches(text), Q(state__in=_ERROR_STATES) & error]


class CountLimitPaginator(Paginator):
    """Counts up to COUNT_LIMIT jobs and says "more than" past it: a count of a million rows costs more
    than the page itself, and past ten pages of a history an operator narrows the search, not pages."""

    @cached_property
    def count(self) -> int:
        self.counted = self.object_list[: COUNT_LIMIT + 1].count()
        return min(self.counted, COUNT_LIMIT)

    @property
    def capped(self) -> bool:
        return self.count < self.counted


class KnownValuesFilter(admin.SimpleListFilter):
    """A filter on one column offering values known without reading the jobs; a value in the URL that
    is not among them (an old task) still filters and is shown."""

    field = ""

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        # Whether the list's time filter is in use: then the equality is kept off its column's index on
        # SQLite (selectors.column_is).
        self.in_time_range = bool(request.GET.get(model_admin.time_filter.parameter_name))

    def known(self) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = self.known()
        if self.value() and self.value() not in values:
            values = [*values, self.value()]
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if not self.value():
            return queryset
        if "\x00" in self.value():
            return queryset.none()  # PostgreSQL refuses a NUL in any text; no job holds one
        return queryset.filter(
            selectors.column_is(self.field, self.value(), in_time_range=self.in_time_range)
        )


class StateFilter(KnownValuesFilter):
    title = parameter_name = field = "state"

    def known(self) -> list[str]:
        return list(Job.State.values)


class QueueFilter(KnownValuesFilter):
    title = parameter_name = field = "queue"

    def known(self) -> list[str]:
        return selectors.queue_names()


class TaskFilter(KnownValuesFilter):
    title = "task"
    parameter_name = field = "task_name"

    def known(self) -> list[str]:
        return metrics_selectors.task_names()


class ErrorFilter(KnownValuesFilter):
    title = "error"
    parameter_name = field = "exception_type"

    def known(self) -> list[str]:
        return metrics_selectors.exception_types()


def time_range(value: str, *, now: datetime | None = None) -> tuple[datetime, datetime | None]:
    """A day (2026-12-03: that day in the site's time zone) or a start (2h, 7d, an ISO time) until now."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return services.moment_parse(value, now=now), None
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    return start, start + timedelta(days=1)


class TimeRangeFilter(admin.SimpleListFilter):
    """The last hour, day, week or month, or one of the last days: a range on an indexed column, where
    date_hierarchy lists the days by a DISTINCT over every row. Any duration (90m) or ISO time in the URL
    works too; a value that is neither lists nothing."""

    field = ""
    DAYS = 7

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        today = timezone.localdate()
        days = [today - timedelta(days=back) for back in range(self.DAYS)]
        return [
            ("1h", "last hour"),
            ("24h", "last 24 hours"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
            *((day.isoformat(), "today" if day == today else f"{day:%a} {day.day} {day:%b}") for day in days),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if not self.value():
            return queryset
        try:
            start, end = time_range(self.value())
        except services.OperationRefused:
            return queryset.none()
        queryset = queryset.filter(**{f"{self.field}__gte": start})
        return queryset.filter(**{f"{self.field}__lt": end}) if end else queryset


class PublishedFilter(TimeRangeFilter):
    title = parameter_name = "published"
    field = "published_at"


class FinishedFilter(TimeRangeFilter):
    title = parameter_name = "finished"
    field = "finished_at"


class JobAdminBase(ReadOnlyAdmin):
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # "Forget" removes failed jobs, audited; the rest is trimmed by retention policies

    list_display = (
        "id",
        "task_name",
        "queue",
        "state",
        "attempts",
        "worker",
        "published_at",
        "wait",
        "run",
        "error",
    )
    list_filter = (StateFilter, QueueFilter, TaskFilter, PublishedFilter)
    time_filter = PublishedFilter
    # Read by get_search_results below; Django shows the search box only when this is set.
    search_fields = ("task_id",)
    search_help_text = SEARCH_HELP
    paginator = CountLimitPaginator
    show_full_result_count = False  # a second count, of the whole table
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice, each over the whole table
    fields = (
        ("task_name", "task_id"),
        ("queue", "state", "attempts", "worker"),
        ("published_at", "started_at", "finished_at"),
        ("args", "kwargs", "args_truncated"),
        ("retry_of", "retried_at", "retried_as"),
        ("exception_type", "exception_message"),
        "traceback_block",
    )
    readonly_fields = ("retried_as", "traceback_block")
    actions = ["retry", "forget"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        if not search_term.strip():
            return queryset, False
        # PostgreSQL refuses a NUL in any text, and no record holds one (the history strips them).
        conditions = [] if "\x00" in search_term else search_conditions(search_term)
        # The search runs once, for the ids of the first COUNT_LIMIT + 1 matches in the list's order (the
        # newest ids when the alternatives find more together); the count and the page then read those
        # rows by id. Left as a condition, each would search again: on SQLite, another read of every
        # job's arguments.
        ids: set[int] = set()
        for condition in conditions:
            ids.update(queryset.filter(condition).values_list("pk", flat=True)[: COUNT_LIMIT + 1])
        return queryset.filter(pk__in=sorted(ids, reverse=True)[: COUNT_LIMIT + 1]), False

    def get_ordering(self, request: HttpRequest) -> list[str]:
        # Within a time range, newest by that time: the databases walk its index from the range's end
        # (selectors.jobs_search does the same) instead of every newer job by id.
        if request.GET.get(self.time_filter.parameter_name):
            return [f"-{self.time_filter.field}", "-id"]
        return list(super().get_ordering(request) or ())

    @admin.display(description="wait")
    def wait(self, job: Job) -> str:
        return formatting.duration(job.wait_seconds)

    @admin.display(description="run")
    def run(self, job: Job) -> str:
        return formatting.duration(job.run_seconds)

    @admin.display(description="error")
    def error(self, job: Job) -> str:
        if not job.exception_type:
            return ""
        first = job.exception_message.splitlines()[0] if job.exception_message else ""
        # A long word (a path, a URL, an id) wraps anywhere instead of pushing the column off a 1366 px
        # screen; the whole first line is the title.
        return format_html(
            '<span title="{}" style="overflow-wrap: anywhere">{}</span>',
            f"{job.exception_type}: {first}",
            f"{job.exception_type}: {first[:120]}",
        )

    @admin.display(description="retried as")
    def retried_as(self, job: Job) -> str:
        return ", ".join(f"#{retry.id} ({retry.state})" for retry in job.retries.all()) or "—"

    @admin.display(description="traceback")
    def traceback_block(self, job: Job) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap; font-size: 12px">{}</pre>', job.traceback or "—"
        )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.retry_job")

    def has_forget_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.retry_job")

    @admin.action(
        description="Retry (publish again with the same arguments and queue)", permissions=["retry"]
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        try:
            result = services.jobs_retry(
                jobs=Job.objects.filter(id__in=ids),
                user=request.user,
                description=f"admin: {len(ids)} selected",
            )
        except BrokerUnavailable as error:
            self.message_user(request, f"The broker cannot be reached: {error}", messages.ERROR)
            return
        if result.retried:
            self.message_user(
                request,
                f"{len(result.retried)} job(s) published again{result.waiting_note}.",
                messages.SUCCESS,
            )
        for job_id, reason in result.refused:
            self.message_user(request, f"Job {job_id} not retried: {reason}", messages.WARNING)
        if not result.retried and not result.refused:
            self.message_user(
                request, "Nothing to retry: only failed jobs not retried yet can be.", messages.INFO
            )

    @admin.action(description="Forget (delete the failed job's record)", permissions=["forget"])
    def forget(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        count = services.jobs_forget(
            jobs=Job.objects.filter(id__in=ids), user=request.user, description=f"admin: {len(ids)} selected"
        )
        self.message_user(request, f"{count} failed job(s) forgotten.", messages.SUCCESS)


@admin.register(Job)
class JobAdmin(JobAdminBase):
    pass


@admin.register(FailedJob)
class FailedJobAdmin(JobAdminBase):
    """Failed jobs an operator still has to deal with: not retried, not forgotten."""

    list_display = ("id", "task_name", "queue", "finished_at", "attempts", "error")
    list_filter = (QueueFilter, TaskFilter, ErrorFilter, FinishedFilter)
    time_filter = FinishedFilter

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).filter(state=Job.State.FAILED, retried_at__isnull=True)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor", "action", "target", "count")
    list_filter = ("action", "actor")
    search_fields = ("actor", "target")
    date_hierarchy = "created_at"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # an audit log nobody can edit from the site


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("key", "firing", "message", "first_seen_at", "last_sent_at", "cleared_at")
    list_filter = ("firing",)
