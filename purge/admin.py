from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from config import formatting
from purge import history, registry, services
from purge.models import PurgeRun, RetentionPolicy
from purge.progress import Progress


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "what", "max_age_days", "enabled", "last_run", "last_removed")
    list_editable = ("max_age_days", "enabled")
    readonly_fields = ("target", "locked_by", "locked_until")
    fields = ("name", "target", "max_age_days", "enabled", "batch_size", "locked_by", "locked_until")
    actions = ["run_now", "dry_run"]

    def has_add_permission(self, request) -> bool:
        return False  # one policy per registered target, installed after migrate

    def change_view(self, request, object_id, form_url="", extra_context=None):
        policy = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if policy is not None:
            context["history_charts"] = history.policy_charts(policy)
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="purges")
    def what(self, policy: RetentionPolicy) -> str:
        target = policy.target_spec
        if target is None:
            return f"unknown target {policy.target!r}"
        # Where it looks, not its label again (a policy's name starts as its label).
        if isinstance(target, registry.FileTarget):
            return f"files {registry.file_scope(target)}"
        return registry.row_scope(target)

    def _last(self, policy: RetentionPolicy) -> PurgeRun | None:
        return policy.runs.exclude(state=PurgeRun.State.SKIPPED).order_by("-created_at").first()

    @admin.display(description="last run")
    def last_run(self, policy: RetentionPolicy) -> str:
        run = self._last(policy)
        if run is None:
            return "never"
        return f"{formatting.moment_words(timezone.localtime(run.created_at))} ({run.state}{', dry run' if run.dry_run else ''})"

    @admin.display(description="removed")
    def last_removed(self, policy: RetentionPolicy) -> str:
        run = self._last(policy)
        if run is None:
            return "—"
        text = f"{run.removed} of {run.examined} examined"
        if run.removed_bytes:
            text += f", {filesizeformat(run.removed_bytes)}"
        return text

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm("purge.run_policy")

    def has_dry_run_permission(self, request) -> bool:
        return request.user.has_perm("purge.dry_run_policy")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset) -> None:
        self._request(request, queryset, dry_run=False)

    @admin.action(description="Dry run (remove nothing, report what would go)", permissions=["dry_run"])
    def dry_run(self, request, queryset) -> None:
        self._request(request, queryset, dry_run=True)

    def _request(self, request, queryset, *, dry_run: bool) -> None:
        with transaction.atomic():
            runs = [
                services.purge_run_request(
                    policy=policy, dry_run=dry_run, trigger=PurgeRun.Trigger.ADMIN, user=request.user
                )
                for policy in queryset
            ]
        kind = "Dry runs" if dry_run else "Runs"
        self.message_user(
            request,
            f"{kind} queued on the default queue: {', '.join(f'#{run.pk}' for run in runs)}. "
            "Follow their progress under Purge runs.",
            messages.SUCCESS,
        )


def count(value: int) -> str:
    return f"{value:,}"


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}".replace("%", "\u00a0%")  # never "30" at a line's end and "%" on the next


def progress_text(run: PurgeRun, progress: Progress) -> str:
    """What the bar means, in words: "42 % · about 3 min left", or how far it got when the total is unknown."""
    if progress.fraction is None:
        return f"{count(run.examined)} examined so far · total not known"
    percent = _percent(progress.fraction)
    text = f"about {percent}" if progress.estimated else percent
    if progress.seconds_left is None:
        return f"{text} · starting"
    left = progress.seconds_left
    if left >= 60:
        left = round(left / 60) * 60  # an estimate: "3 min 1 s" would claim a precision it does not have
    return f"{text} · about {formatting.duration(left)} left"


def progress_html(run: PurgeRun, now=None) -> str:
    """A bar while the run works (with no value when the total is not known: the browser draws a bar that
    says "busy" without claiming a share); how far a failed run got; nothing once a run is done."""
    progress = run.progress(now)
    if run.state == PurgeRun.State.RUNNING:
        if progress.fraction is None:
            bar = mark_safe('<progress class="purge-progress" max="1"></progress>')
        else:
            bar = format_html(
                '<progress class="purge-progress" value="{}" max="1"></progress>', f"{progress.fraction:.3f}"
            )
        text = progress_text(run, progress)
        if progress.estimated:
            why = f"compared with the {count(progress.scope or 0)} files the last run examined"
            return format_html('{}<span class="purge-progress-text" title="{}">{}</span>', bar, why, text)
        return format_html('{}<span class="purge-progress-text">{}</span>', bar, text)
    if run.state == PurgeRun.State.FAILED and progress.fraction is not None:
        return f"stopped at {_percent(progress.fraction)}"
    if run.state == PurgeRun.State.DONE:
        return "complete"
    return "—"


def run_starter(run: PurgeRun) -> str:
    if run.triggered_by is not None:
        return run.triggered_by.get_username()
    return {PurgeRun.Trigger.NIGHTLY: "nightly schedule", PurgeRun.Trigger.COMMAND: "shell command"}.get(
        run.trigger, run.trigger
    )


def removed_text(removed: int, removed_bytes: int) -> str:
    return f"{count(removed)} · {filesizeformat(removed_bytes)}" if removed_bytes else count(removed)


def _resumable(run: PurgeRun) -> bool:
    return run.state == PurgeRun.State.FAILED and run.started_at is not None


def _active(run: PurgeRun | None = None) -> bool:
    states = [PurgeRun.State.QUEUED, PurgeRun.State.RUNNING]
    return run.state in states if run else PurgeRun.objects.filter(state__in=states).exists()


# The detail page lists this many batches, the latest: a run of a million rows in batches of one would
# otherwise make a page of a million lines.
BATCHES_SHOWN = 200


@admin.register(PurgeRun)
class PurgeRunAdmin(admin.ModelAdmin):
    # Fits 1366 px beside the filters: what an operator scans for; counts and tasks are on the run's page.
    list_display = (
        "number", "policy", "kind", "state_shown", "progress", "removed_shown", "took", "requested",
    )  # fmt: skip
    list_display_links = ("number", "policy")
    # Runs are the record of what was removed: no bulk delete, and no checkbox column taking room from it.
    actions = None
    list_select_related = ("policy", "triggered_by")
    list_filter = ("state", "dry_run", "trigger", "policy")
    date_hierarchy = "created_at"
    # The list's facts first, a few to a line, then the run's batches (change_form.html). The state is the
    # field itself here (the error has its own line; tests/integration read `.field-state`).
    fieldsets = (
        (None, {"fields": (
            "policy", ("kind", "state", "started_by"), ("progress", "removed_shown", "examined_shown"),
            ("created_at", "started_at", "finished_at", "took"), "cutoff", "error",
        )}),
        ("Inside the run", {"classes": ("collapse",), "fields": (
            "trigger", "slot", "cursor", "covered", "scope", "scope_estimated", "tasks",
        )}),
    )  # fmt: skip
    readonly_fields = [f.name for f in PurgeRun._meta.fields] + [
        "kind", "state_shown", "progress", "removed_shown", "examined_shown", "took", "started_by",
    ]  # fmt: skip

    @admin.display(description="kind", ordering="dry_run")
    def kind(self, run: PurgeRun) -> str:
        # In words: Django's boolean icons put a red cross on every real run, which reads as a failure.
        return "dry run" if run.dry_run else "real run"

    @admin.display(description="state", ordering="state")
    def state_shown(self, run: PurgeRun) -> str:
        if not run.error:
            return run.state
        # The whole error is on the run's page; here its start, so a long one cannot widen the table.
        return format_html(
            '{}<div class="purge-error" title="{}">{}</div>',
            run.state,
            run.error,
            Truncator(run.error).chars(60),
        )

    @admin.display(description="progress")
    def progress(self, run: PurgeRun) -> str:
        return progress_html(run)

    @admin.display(description="removed", ordering="removed")
    def removed_shown(self, run: PurgeRun) -> str:
        text = removed_text(run.removed, run.removed_bytes)
        return f"{text} (would go)" if run.dry_run else text

    @admin.display(description="examined")
    def examined_shown(self, run: PurgeRun) -> str:
        return f"{count(run.examined)} in {count(run.batches)} batch{'' if run.batches == 1 else 'es'}"

    @admin.display(description="duration")
    def took(self, run: PurgeRun) -> str:
        return formatting.duration(run.duration)

    @admin.display(description="#")
    def number(self, run: PurgeRun) -> int:
        # Not sortable, unlike "started": a sort arrow and its priority would double the column's width.
        return run.pk

    @admin.display(description="requested")
    def requested(self, run: PurgeRun) -> str:
        # When and by whom in one column; day and time only (the run's page has the year and seconds). Not
        # sortable: the list is newest first already, and sort arrows would widen the column past 1366 px.
        when = timezone.localtime(run.created_at)
        return format_html(
            '{}<div class="purge-by">{}</div>', f"{when.day} {when:%b %H:%M}", run_starter(run)
        )

    @admin.display(description="started by", ordering="trigger")
    def started_by(self, run: PurgeRun) -> str:
        return run_starter(run)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "auto_refresh": _active()})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if run is not None:
            context.update(auto_refresh=_active(run), **self._batches_context(run))
            context["can_resume"] = _resumable(run) and request.user.has_perm("purge.run_policy")
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):
        resume = path(
            "<int:run_id>/resume/", self.admin_site.admin_view(self.resume_view), name="purge_purgerun_resume"
        )
        return [resume, *super().get_urls()]

    def resume_view(self, request, run_id: int):
        """Carry a failed run on from its cursor (POST, with the permission to run a policy)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("purge.run_policy"):
            raise PermissionDenied
        run = get_object_or_404(PurgeRun.objects.select_related("policy"), pk=run_id)
        with transaction.atomic():
            resumed = services.purge_run_resume(run=run)
        if resumed:
            self.message_user(
                request,
                f"{run} resumed from where it stopped ({count(run.examined)} examined so far); it carries on "
                "on the default queue.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"{run} is {run.state}: only a run that failed after it started can be resumed.",
                messages.ERROR,
            )
        return HttpResponseRedirect(reverse("admin:purge_purgerun_change", args=[run.pk]))

    def _batches_context(self, run: PurgeRun) -> dict:
        latest = list(run.batch_set.order_by("-number")[:BATCHES_SHOWN])
        rows = [
            {
                "number": count(batch.number),
                "examined": count(batch.examined),
                "removed": removed_text(batch.removed, batch.removed_bytes),
                "seconds": formatting.duration(batch.seconds),
                "finished_at": timezone.localtime(batch.finished_at),
            }
            for batch in reversed(latest)
        ]
        return {"batch_rows": rows, "batches_total": run.batch_set.count(), "batches_shown": len(rows)}
