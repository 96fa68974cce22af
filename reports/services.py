from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from accounts.api import integer_parse
from reports.models import Report, ReportHistoryRecord, ReportImage
from reports.selectors import images_only_in, report_images, reports_visible
from thumbnails import services as thumbnails
from thumbnails.models import Image


def report_resolve(ref: str, user) -> Report:
    """A report by id (one the user sees) or by name (the user's own, else one shared with them, else a new
    one of their own): how uploads name their report. A report the user may not see is "no report", 404,
    exactly like one that does not exist."""
    ref = "".join(c for c in ref.strip() if c.isprintable())
    visible = reports_visible(user) if user is not None else Report.objects.all()  # None: a command
    if ref.isascii() and ref.isdecimal():
        pk = integer_parse(ref)
        report = visible.filter(pk=pk).first() if pk is not None else None
        if report is None:
            raise thumbnails.UploadRejected(f"no report with id {ref}", status=404)
        return report
    name = ref[:200]
    if not name:
        raise thumbnails.UploadRejected("the report name is empty")
    report = (
        visible.filter(name=name, owner=user).first()
        or visible.filter(name=name).order_by("created_at", "pk").first()
    )
    if report is None:
        report, _created = Report.objects.get_or_create(name=name, owner=user)
    return report


def report_attach_image(image: Image, ref: str, user) -> None:
    ReportImage.objects.get_or_create(report=report_resolve(ref, user), image=image)


def report_render(*, report: Report, user) -> list[Image]:
    """Record the rendering, and queue a `high` job for every image whose renditions are missing or
    stale. Never waits for a thumbnail: the page shows placeholders and polls."""
    ReportHistoryRecord.objects.create(report=report, rendered_by=user if user.is_authenticated else None)
    images = list(report_images(report).prefetch_related("renditions"))
    due = [image.pk for image in images if thumbnails.image_needs_dispatch(image)]
    if due:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=due), robust=True)
    return images


# Deleting removes rows only. The files stay for the purge's file policies, which remove a file once no row
# references it and its grace period has passed: one mechanism for every file, and a twin image (the same
# content, so the same storage names) keeps its files because its rows still reference them. A rendition
# job that is queued for a deleted image finds no row and does nothing; one that is running at that moment
# may still write its files, which then are orphans like any other (its rows cannot be saved without the
# image's: tests/reports/test_delete.py).


def image_delete(*, report: Report, image: Image) -> bool:
    """Take `image` out of `report`, and delete it (its renditions' rows cascade) unless another report still
    holds it. True when it was deleted, False when only taken out."""
    with transaction.atomic():
        deleted = _images_deleted(images_only_in(report).filter(pk=image.pk)) == 1
        ReportImage.objects.filter(report=report, image=image).delete()
    return deleted


def report_delete(*, report: Report) -> int:
    """Delete `report` with its history and print tasks, and its images that no other report holds (those
    stay where they also are). Returns how many images were deleted."""
    with transaction.atomic():
        images = _images_deleted(images_only_in(report))
        report.delete()
    return images


def _images_deleted(images: QuerySet[Image]) -> int:
    # Through the ORM's collector, so each image's renditions (and links to reports) go with it.
    return images.delete()[1].get(Image._meta.label, 0)
