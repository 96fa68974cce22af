"""Who sees which report: its owner, the members of the groups it is shared with, and staff."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from accounts.api import integer_parse
from reports.models import Report


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
