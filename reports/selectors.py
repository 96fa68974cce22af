"""Who sees which report: its owner, the members of the groups it is shared with, and staff."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from reports.models import Report


def reports_visible(user) -> QuerySet[Report]:
    """The reports `user` may see and upload to; none for an anonymous user."""
    if not user.is_authenticated or not user.is_active:
        return Report.objects.none()
    if user.is_staff:
        return Report.objects.all()
    shared = Report.objects.filter(shared_with__in=user.groups.all()).values("pk")
    return Report.objects.filter(Q(owner=user) | Q(pk__in=shared))


def images_visible_through_reports(user) -> Q:
    """For thumbnails' image visibility (registered in apps.py): images in a report the user sees."""
    return Q(reports__in=reports_visible(user).values("pk"))
