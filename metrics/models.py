from __future__ import annotations

from django.db import models


class Tally(models.Model):
    """One measure of one queue and task over one span of time: a minute, an hour, or all time (span 0).

    Written by every process that publishes or runs jobs (metrics/store.py adds to a row, never replaces
    it), so the figures are the sum over processes and hosts. Minute rows are kept 48 hours and hour rows
    90 days by default (purge policies); all-time rows are few and kept.
    """

    span = models.PositiveIntegerField()
    period = models.DateTimeField()
    queue = models.CharField(max_length=100)
    task_name = models.CharField(max_length=200)
    # All-time rows only: the host that saw the event, as celery-exporter labels its counters.
    hostname = models.CharField(max_length=200, blank=True)
    measure = models.CharField(max_length=20)
    # The exception type of a failure, or a bucket's index for run and wait times.
    label = models.CharField(max_length=200, blank=True)
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["span", "period", "queue", "task_name", "hostname", "measure", "label"],
                name="metrics_tally_key",
            )
        ]
        # The unique key's index starts with (span, period): charts read a span's time range through it.

    def __str__(self) -> str:
        return f"{self.measure}{f'[{self.label}]' if self.label else ''} {self.queue}/{self.task_name}"
