from __future__ import annotations

from django.db import transaction

from reports.models import Report, ReportHistoryRecord, ReportImage
from thumbnails import services as thumbnails
from thumbnails.models import Image


def report_resolve(ref: str, user) -> Report:
    """A report by id (it must exist) or by name (created if new): how uploads name their report."""
    ref = ref.strip().replace("\x00", "")
    if ref.isascii() and ref.isdecimal():
        report = Report.objects.filter(pk=int(ref)).first()
        if report is None:
            raise thumbnails.UploadRejected(f"no report with id {ref}")
        return report
    if not ref:
        raise thumbnails.UploadRejected("the report name is empty")
    report, _created = Report.objects.get_or_create(name=ref[:200], defaults={"created_by": user})
    return report


def report_attach_image(image: Image, ref: str, user) -> None:
    ReportImage.objects.get_or_create(report=report_resolve(ref, user), image=image)


def report_render(*, report: Report, user) -> list[Image]:
    """Record the rendering, and queue a `high` job for every image whose renditions are missing or
    stale. Never waits for a thumbnail: the page shows placeholders and polls."""
    ReportHistoryRecord.objects.create(report=report, rendered_by=user if user.is_authenticated else None)
    images = list(report.images.prefetch_related("renditions").order_by("reportimage__added_at", "pk"))
    due = [image.pk for image in images if thumbnails.image_needs_dispatch(image)]
    if due:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=due), robust=True)
    return images
