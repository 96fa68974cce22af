from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from purge import registry
from purge.progress import Progress, progress_estimate


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
    # Progress: how much of its scope the run has covered (primary keys for rows, files for files) out of
    # how much there is. A row run knows its key span from its first batch; a file run cannot know how many
    # files it will walk without walking them, so it takes the last finished run's count as an estimate.
    scope = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="keys or files to cover in all; empty when not known"
    )
    scope_estimated = models.BooleanField(default=False, help_text="the scope is the last run's count")
    covered = models.PositiveBigIntegerField(default=0, help_text="keys or files covered so far")
    tasks = models.PositiveIntegerField(default=0, help_text="tasks that worked on this run (continuations)")
    failures = models.PositiveIntegerField(
        default=0,
        help_text="attempts in a row that the media store or the database failed (retried with backoff)",
    )
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

    def progress(self, now: datetime | None = None) -> Progress:
        elapsed = (now or timezone.now()) - self.started_at if self.started_at else None
        return progress_estimate(
            covered=self.covered, scope=self.scope, estimated=self.scope_estimated, elapsed=elapsed
        )


class PurgeBatch(models.Model):
    """One batch of a run, as it committed: what the detail page of a run lists.

    A row per batch rather than a list on the run: a batch inserts its row in its own transaction, so a
    batch rolled back (soft time limit, lost lock) leaves no row, and nothing rewrites a growing list.
    At the default 5,000 rows or files a batch, a million make 200 rows.
    """

    run = models.ForeignKey(PurgeRun, on_delete=models.CASCADE, related_name="batch_set")
    number = models.PositiveIntegerField()
    examined = models.PositiveBigIntegerField()
    removed = models.PositiveBigIntegerField(help_text="removed, or would be on a dry run")
    removed_bytes = models.PositiveBigIntegerField(default=0)
    seconds = models.FloatField()
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_batch_per_run_and_number")]

    def __str__(self) -> str:
        return f"batch {self.number} of run #{self.run_id}"
