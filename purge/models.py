from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from purge import registry


class RetentionPolicy(models.Model):
    """How long one purge target keeps what it holds. One row per target, edited by admins."""

    name = models.CharField(max_length=100, unique=True)
    target = models.CharField(max_length=50, unique=True, help_text="what this policy purges")
    max_age_days = models.PositiveIntegerField(help_text="rows (or unreferenced files) older than this go")
    enabled = models.BooleanField(default=True, help_text="the nightly purge runs enabled policies only")
    batch_size = models.PositiveIntegerField(default=5000, help_text="rows or files per short transaction")
    # An expiring lock, taken by a conditional UPDATE: a dead worker's lock runs out by itself.
    locked_by = models.ForeignKey(
        "PurgeRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "retention policies"
        ordering = ["name"]
        permissions = [
            ("run_policy", "Can run a retention policy now"),
            ("dry_run_policy", "Can dry-run a retention policy"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target_spec(self) -> registry.Target | None:
        return registry.TARGETS.get(self.target)


class PurgeRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped"

    class Trigger(models.TextChoices):
        NIGHTLY = "nightly", "nightly"
        ADMIN = "admin", "admin"
        COMMAND = "command", "command"

    policy = models.ForeignKey(RetentionPolicy, on_delete=models.CASCADE, related_name="runs")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The nightly slot (a date in TIME_ZONE): unique per policy, so two beats cannot run a night twice.
    slot = models.DateField(null=True, blank=True)
    # Frozen when the run starts, so a continuation or a redelivery judges age exactly as the start did.
    cutoff = models.DateTimeField(null=True, blank=True)
    cursor = models.CharField(max_length=500, blank=True, help_text="where the next batch starts")
    examined = models.PositiveBigIntegerField(default=0)
    removed = models.PositiveBigIntegerField(default=0, help_text="removed, or would be on a dry run")
    removed_bytes = models.PositiveBigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    tasks = models.PositiveIntegerField(default=0, help_text="tasks that worked on this run (continuations)")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "slot"], name="one_nightly_run_per_policy_and_day")
        ]

    def __str__(self) -> str:
        return f"{'dry run' if self.dry_run else 'run'} #{self.pk} of {self.policy}"

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def final(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED, self.State.SKIPPED)
