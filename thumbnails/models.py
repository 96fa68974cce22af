from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from thumbnails import storage
from thumbnails.imaging import CONTENT_REJECTIONS


class Image(models.Model):
    """An uploaded image. Its file and renditions live at content-addressed paths (see services)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    original = models.CharField(max_length=300, help_text="storage name of the uploaded file")
    original_name = models.CharField(max_length=255, help_text="the file name the uploader gave")
    content_hash = models.CharField(max_length=64, db_index=True)
    byte_size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    # `error` is for the people who see the image (a sentence, never a path or an exception);
    # `error_detail` is the technical cause, for staff in the admin.
    error = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    # What kind of input the worker rejected ("format", "corrupt", ...): operators count rejections by it.
    # Empty for an image that is not failed, or failed for a reason other than its input.
    error_kind = models.CharField(max_length=20, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # Set when a worker begins an attempt: a pending image with it is being processed, without it queued.
    started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    format = models.CharField(max_length=10, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    animated = models.BooleanField(default=False)
    exif = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The per-user upload limits count a user's recent uploads (services.upload_quota_check).
        indexes = [
            models.Index(fields=["uploaded_by", "created_at"], name="image_uploads_by_user"),
        ]
        permissions = [("upload_without_limits", "Can upload without the per-user limits")]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    @property
    def retry_may_help(self) -> bool:
        """A failed image that the same bytes could still turn into renditions (staff get a Retry)."""
        return self.status == self.Status.FAILED and self.error_kind not in CONTENT_REJECTIONS

    @property
    def rendition_map(self) -> dict[str, Rendition]:
        return {rendition.name: rendition for rendition in self.renditions.all()}


class InputRejection(models.Model):
    """One input a worker refused, as it happened. The operators' count of rejected inputs (jobs' dashboard,
    `jobs status`, /metrics) reads these, not the images: deleting or retrying an image does not rewrite
    what happened. Trimmed by the purge policy "Records of rejected inputs"."""

    # Not a foreign key: the record outlives its image.
    image_id = models.BigIntegerField()
    kind = models.CharField(max_length=20)  # an imaging.Rejection
    rejected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["rejected_at", "kind"], name="rejections_by_time")]

    def __str__(self) -> str:
        return f"image {self.image_id} rejected ({self.kind})"


class Rendition(models.Model):
    """One generated file of an image: `thumb` (400×400 box) or `preview` (2048 px)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="renditions")
    name = models.CharField(max_length=20)
    spec_key = models.CharField(max_length=60, help_text="changes with the spec or the pipeline version")
    file = models.CharField(max_length=300, help_text="storage name")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "name"], name="one_rendition_per_name")]
        ordering = ["image", "name"]

    def __str__(self) -> str:
        return f"{self.name} of image {self.image_id}"

    @property
    def url(self) -> str:
        return storage.url(self.file)
