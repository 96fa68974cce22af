from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from config import formatting
from purge import services
from purge.models import PurgeRun, RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "what", "max_age_days", "enabled", "last_run", "last_removed")
    list_editable = ("max_age_days", "enabled")
    readonly_fields = ("target", "locked_by", "locked_until")
    fields = ("name", "target", "max_age_days", "enabled", "batch_size", "locked_by", "locked_until")
    actions = ["run_now", "dry_run"]

    def has_add_permission(self, request) -> bool:
        return False  # one policy per registered target, installed after migrate

    @admin.display(description="purges")
    def what(self, policy: RetentionPolicy) -> str:
        target = policy.target_spec
        return target.label if target else f"unknown target {policy.target!r}"

    def _last(self, policy: RetentionPolicy) -> PurgeRun | None:
        return policy.runs.exclude(state=PurgeRun.State.SKIPPED).order_by("-created_at").first()

    @admin.display(description="last run")
    def last_run(self, policy: RetentionPolicy) -> str:
        run = self._last(policy)
        if run is None:
            return "never"
        return f"{run.created_at:%Y-%m-%d %H:%M} ({run.state}{', dry run' if run.dry_run else ''})"

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


@admin.register(PurgeRun)
class PurgeRunAdmin(admin.ModelAdmin):
    list_display = (
        "id", "policy", "kind", "state", "trigger", "triggered_by", "examined", "removed",
        "batches", "tasks", "took", "created_at", "error",
    )  # fmt: skip
    list_filter = ("state", "dry_run", "trigger", "policy")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in PurgeRun._meta.fields] + ["took"]

    @admin.display(description="kind", ordering="dry_run")
    def kind(self, run: PurgeRun) -> str:
        # In words: Django's boolean icons put a red cross on every real run, which reads as a failure.
        return "dry run" if run.dry_run else "real run"

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="duration")
    def took(self, run: PurgeRun) -> str:
        return formatting.duration(run.duration)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        active = PurgeRun.objects.filter(state__in=[PurgeRun.State.QUEUED, PurgeRun.State.RUNNING]).exists()
        return super().changelist_view(request, {**(extra_context or {}), "auto_refresh": active})
