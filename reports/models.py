from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Report(models.Model):
    """A set of images. Its owner and the members of the groups it is shared with see it and upload to it;
    staff see every report (reports/selectors.py)."""

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reports_owned",
        help_text="who created it; without an owner only staff see it",
    )
    shared_with = models.ManyToManyField(
        "auth.Group", blank=True, related_name="reports", help_text="their members see it and upload to it"
    )
    created_at = models.DateTimeField(default=timezone.now)
    images = models.ManyToManyField("thumbnails.Image", through="ReportImage", related_name="reports")

    class Meta:
        ordering = ["-created_at", "-id"]
        # Per owner: a global constraint would tell one user the names of another's reports.
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="report_name_once_per_owner")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("reports:detail", args=[self.pk])


class ReportImage(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE)
    image = models.ForeignKey("thumbnails.Image", on_delete=models.CASCADE)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "image"], name="image_once_per_report")]
        ordering = ["added_at", "id"]

    def __str__(self) -> str:
        return f"image {self.image_id} in {self.report}"


class ReportHistoryRecord(models.Model):
    """One rendering of a report: who looked at it, when. Purged after its retention period."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="history")
    rendered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rendered_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-rendered_at", "-id"]

    def __str__(self) -> str:
        return f"{self.report} rendered at {self.rendered_at:%Y-%m-%d %H:%M}"


class PrintTask(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        PRINTING = "printing", "printing"
        COMPLETED = "completed", "completed"
        FAILED = "failed", "failed"

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="print_tasks")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"print of {self.report} ({self.status})"
