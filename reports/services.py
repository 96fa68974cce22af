from __future__ import annotations

from django.db import transaction

from accounts.api import integer_parse
from reports.models import Report, ReportHistoryRecord, ReportImage
from reports.selectors import reports_visible
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
    images = list(report.images.prefetch_related("renditions").order_by("reportimage__added_at", "pk"))
    due = [image.pk for image in images if thumbnails.image_needs_dispatch(image)]
    if due:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=due), robust=True)
    return images
