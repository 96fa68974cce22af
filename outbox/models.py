from __future__ import annotations

from django.db import models


class Intent(models.Model):
    """A task Kiln means to publish, written in the transaction of the change that asks for it and published
    after commit; what is still unpublished once the broker returns, the sweep publishes (outbox/services.py).

    Each intent has one task id for every copy it is ever published as; `attempts` numbers the copies (the
    message header COPY_HEADER), and the worker runs only the copy it claims first (`ran_copy`)."""

    task_id = models.CharField(max_length=64, unique=True)
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    # Empty: routed by the task's name (CELERY_TASK_ROUTES), as a plain publish would be.
    queue = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict)
    # A countdown becomes an absolute time when the intent is written: a copy the sweep publishes later still
    # runs when it was meant to, not a countdown after the outage.
    eta = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    # Beat's entries: at most one unpublished intent per key (outbox/beat.py); empty for everything else.
    key = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Publish attempts so far, and when the last one began: the sweep claims an intent by raising `attempts`
    # from the value it read (a conditional UPDATE), so two sweeps never publish the same copy.
    attempts = models.PositiveIntegerField(default=0)
    attempted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    error = models.TextField(blank=True)
    # The copy a worker started (the first to claim it); copies skipped as duplicates are counted.
    ran_copy = models.PositiveIntegerField(null=True, blank=True)
    duplicates = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["published_at", "created_at"], name="outbox_unpublished")]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]"
