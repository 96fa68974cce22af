from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
from django.utils import timezone

from outbox.models import Intent


@dataclass(frozen=True)
class Backlog:
    """The intents not published yet: how many, and how long the oldest has waited (seconds)."""

    unpublished: int
    oldest_age: float | None


def backlog(*, now: datetime | None = None) -> Backlog:
    now = now or timezone.now()
    row = Intent.objects.filter(published_at__isnull=True, ran_copy__isnull=True).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    oldest = row["oldest"]
    return Backlog(row["count"], None if oldest is None else max((now - oldest).total_seconds(), 0.0))
