from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from broker.queues import BrokerUnavailable
from config import formatting
from jobs import services
from jobs.models import Alert, AuditEntry, FailedJob, Job

# The admin's home page links the jobs dashboard and Flower for those who may see them.
admin.site.index_template = "admin/kiln_index.html"


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by Kiln, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
    list_filter = ("state", "queue", "task_name", "exception_type")
    search_fields = ("task_id", "task_name", "exception_message")
    date_hierarchy = "published_at"
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
            self.message_user(request, f"{len(result.retried)} job(s) published again.", messages.SUCCESS)
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
    list_filter = ("queue", "task_name", "exception_type")
    date_hierarchy = "finished_at"

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
