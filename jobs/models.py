from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.lookups import Contains

from jobs.arguments import argument_values


class Job(models.Model):
    """One task Kiln published: the memory Flower lacks. Written by `jobs.history` from Celery's signals."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        STARTED = "started", "started"
        RETRYING = "retrying", "retrying"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        # Removed from its queue by `jobs clear` before any worker took it.
        CLEARED = "cleared", "cleared"
        # Revoked, expired, or refused by the worker (an unknown task): it will not run.
        REVOKED = "revoked", "revoked"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CLEARED, State.REVOKED)

    task_id = models.CharField(max_length=64, unique=True)
    task_name = models.CharField(max_length=200, db_index=True)
    queue = models.CharField(max_length=100, db_index=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    # True when args/kwargs were larger than KILN_JOB_ARGS_MAX_BYTES and were not kept: such a job
    # cannot be retried from its record.
    args_truncated = models.BooleanField(default=False)
    # Every value of args and kwargs for the argument search (jobs/arguments.py), written with them.
    # Migration 0006 indexes it: on PostgreSQL with trigrams (pg_trgm), which find a value among a million
    # jobs in milliseconds; on SQLite with a plain index, which the search reads instead of the table.
    argument_values = models.TextField(blank=True, default="", editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    # Orders the events of one task that arrive from different processes (publisher, worker) in any
    # order: attempt * 10 + the rank of the state. A record only moves forward.
    progress = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    exception_type = models.CharField(max_length=200, blank=True)
    exception_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # A failed job's issue (jobs/issues.py): the jobs that failed the same way in the same place share it.
    fingerprint = models.CharField(max_length=12, blank=True)
    # `jobs retry` publishes a new job and links the two.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "finished_at"], name="jobs_job_state_finished"),
            # An issue's jobs, latest first (its page, its sample, retry and forget of the whole issue).
            models.Index(fields=["fingerprint", "finished_at"], name="jobs_job_fingerprint_finished"),
        ]
        permissions = [
            ("view_dashboard", "Can view the jobs dashboard and Flower"),
            ("operate_flower", "Can use Flower's state-changing actions"),
            ("retry_job", "Can retry, forget and flush failed jobs"),
            ("operate_queues", "Can clear, pause, resume and scale queues"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # jobs.history writes records with its own upsert, which sets the column itself; this keeps records
        # made through the ORM (tests, a shell) searchable too.
        self.argument_values = argument_values(self.args, self.kwargs)
        super().save(*args, **kwargs)

    @property
    def wait_seconds(self) -> float | None:
        if self.published_at and self.started_at:
            return max((self.started_at - self.published_at).total_seconds(), 0.0)
        return None

    @property
    def run_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return max((self.finished_at - self.started_at).total_seconds(), 0.0)
        return None


class Holds(Contains):
    """`argument_values__holds=text`: the column holds `text`, exactly (the column and the searched text
    are both lowercased: jobs/arguments.py). PostgreSQL gets Django's LIKE '%…%', which its trigram index
    serves. SQLite reads the column of every job, and instr() does that in three quarters of the time of
    the LIKE Django writes there (which folds the case of every character; 100 ms against 130 on
    1,000,000 jobs)."""

    lookup_name = "holds"

    def get_rhs_op(self, connection: Any, rhs: str) -> str:
        return connection.operators["contains"] % rhs

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"instr({lhs}, %s) > 0", [*lhs_params, self.rhs]


Job._meta.get_field("argument_values").register_lookup(Holds)


class AuditEntry(models.Model):
    """Who changed what in the queues and when: every state-changing operation writes one."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The person when there is no user: "shell:root" for a management command.
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=50, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    count = models.IntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target} ({self.count})"


class Alert(models.Model):
    """One alert condition (a key such as `wait:high`): firing until it clears, mailed once per cooldown."""

    key = models.CharField(max_length=100, unique=True)
    message = models.TextField()
    firing = models.BooleanField(default=False, db_index=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    last_sent_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class ScheduleSlot(models.Model):
    """One run of a beat entry, claimed by the beat that sends it (jobs/beat.py): the unique (name, slot)
    lets a second beat (an election's overlap, a beat started by hand) send no slot that was sent."""

    name = models.CharField(max_length=200)  # the PeriodicTask's name
    slot = models.DateTimeField()
    claimed_at = models.DateTimeField(auto_now_add=True)
    claimed_by = models.CharField(max_length=200)  # host and pid of the beat
    task_id = models.CharField(max_length=255, blank=True)  # set once sent; the Job's task_id

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "slot"], name="schedule_slot_once")]
        ordering = ["name", "-slot"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.slot:%Y-%m-%d %H:%M:%S}"


class FailedJob(Job):
    """The failed-jobs list of the admin: the same rows, filtered there."""

    class Meta:
        proxy = True
        ordering = ["-finished_at", "-id"]
        verbose_name = "failed job"
