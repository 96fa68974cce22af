"""Who sees which report: its owner, the members of the groups it is shared with, and staff."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from accounts.api import integer_parse
from reports.models import Report, ReportImage
from thumbnails.models import Image


def reports_visible(user) -> QuerySet[Report]:
    """The reports `user` may see and upload to; none for an anonymous user."""
    if not user.is_authenticated or not user.is_active:
        return Report.objects.none()
    if user.is_staff:
        return Report.objects.all()
    shared = Report.objects.filter(shared_with__in=user.groups.all()).values("pk")
    return Report.objects.filter(Q(owner=user) | Q(pk__in=shared))


def reports_listed(user) -> QuerySet[Report]:
    """The reports list: newest first, each with its image counts by status and the file of its cover
    (the thumbnail of its first ready image), in one query."""
    from thumbnails.models import Rendition  # below reports in the arrows; imported where used

    cover = Rendition.objects.filter(
        name="thumb", image__status="ready", image__reportimage__report=OuterRef("pk")
    ).order_by("image__reportimage__added_at", "image_id")
    return (
        reports_visible(user)
        .select_related("owner")
        .annotate(
            image_count=Count("images"),
            ready=Count("images", filter=Q(images__status="ready")),
            failed=Count("images", filter=Q(images__status="failed")),
            pending=Count("images", filter=Q(images__status="pending")),
            cover=Subquery(cover.values("file")[:1]),
        )
        .order_by("-created_at", "-id")
    )


def images_in_report(user, value: str) -> Q:
    """The image list's `report=<id>` filter (registered in apps.py): a report the user sees, else 404."""
    pk = integer_parse(value)
    report = reports_visible(user).filter(pk=pk).first() if pk is not None else None
    if report is None:
        raise LookupError(f"no report {value.strip()[:40]}")
    return Q(reports=report)


def images_visible_through_reports(user) -> Q:
    """For thumbnails' image visibility (registered in apps.py): images in a report the user sees."""
    return Q(reports__in=reports_visible(user).values("pk"))


def report_images(report: Report) -> QuerySet[Image]:
    """A report's images in the order its page shows them: as they were added to it, ties by id."""
    return report.images.order_by("reportimage__added_at", "pk")


@dataclass(frozen=True)
class Neighbours:
    """Where one image stands among its report's images: its place (from 1), the count, the ids either side."""

    position: int
    count: int
    previous_id: int | None
    next_id: int | None


def image_neighbours(*, report: Report, image_id: int) -> Neighbours:
    # The ids in page order, one small query: previous and next follow whatever order the page uses.
    ids = list(report_images(report).values_list("pk", flat=True))
    index = ids.index(image_id)
    return Neighbours(
        position=index + 1,
        count=len(ids),
        previous_id=ids[index - 1] if index > 0 else None,
        next_id=ids[index + 1] if index + 1 < len(ids) else None,
    )


def images_only_in(report: Report) -> QuerySet[Image]:
    """The report's images that no other report holds: those that go when the report goes."""
    elsewhere = ReportImage.objects.exclude(report=report).values("image_id")
    return Image.objects.filter(reportimage__report=report).exclude(pk__in=elsewhere)


def report_can_manage(report: Report, user) -> bool:
    """Its owner and staff: the people who may share it and delete it."""
    return user.is_staff or (report.owner_id is not None and report.owner_id == user.pk)


def image_can_delete(*, report: Report, image: Image, user) -> bool:
    """Whoever may delete the report, and the image's uploader (a member who put it in a shared report)."""
    return report_can_manage(report, user) or (
        image.uploaded_by_id is not None and image.uploaded_by_id == user.pk
    )
