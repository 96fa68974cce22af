"""Rejected inputs: an upload the workers refused (corrupt, truncated, an unsupported format) fails its own
item, not its job, so the job figures never show it. Operators see them here, by kind and hour, on the
dashboard, in `jobs status` and `jobs health --json` and on /metrics: as information, never as a health
finding or an alert, because an uploader's bad file is nobody's page.

jobs knows no domain app: an app that rejects inputs registers a source in its AppConfig.ready.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

HOURS = 24

# since -> (start of the hour, kind, count) for every input rejected at or after `since`.
RejectionCounts = Callable[[datetime], Iterable[tuple[datetime, str, int]]]


@dataclass(frozen=True)
class RejectionSource:
    name: str  # what was rejected, e.g. "images"
    counts: RejectionCounts
    kinds: tuple[str, ...] = ()  # every kind it may report: /metrics says 0 for those not seen


SOURCES: dict[str, RejectionSource] = {}


def register(source: RejectionSource) -> None:
    SOURCES[source.name] = source


@dataclass(frozen=True)
class HourRejections:
    start: datetime  # in UTC: two local 02:00s on the night summer time ends compare equal in their zone
    by_kind: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def label(self) -> str:
        return timezone.localtime(self.start).strftime("%H:%M")


@dataclass(frozen=True)
class Rejections:
    last_hour: dict[str, int] = field(default_factory=dict)  # kind -> count, the last 60 minutes
    hours: tuple[HourRejections, ...] = ()  # the last HOURS clock hours, oldest first, this one last
    kinds: tuple[str, ...] = ()  # every kind the sources may report

    @property
    def last_hour_total(self) -> int:
        return sum(self.last_hour.values())

    @property
    def day_by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for hour in self.hours:
            for kind, count in hour.by_kind.items():
                totals[kind] = totals.get(kind, 0) + count
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def hour_starts(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The starts of the last `hours` clock hours of the current time zone, oldest first, in UTC: counted
    there, a change to or from summer time neither skips nor repeats an hour."""
    this_hour = timezone.localtime(now).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return [this_hour - timedelta(hours=back) for back in range(hours - 1, -1, -1)]


def rejections_read(now: datetime | None = None) -> Rejections:
    """Two indexed queries per source: the last 60 minutes, and the last HOURS clock hours."""
    now = now or timezone.now()
    starts = hour_starts(now)
    last_hour: dict[str, int] = {}
    slots: list[dict[str, int]] = [{} for _ in starts]
    kinds: list[str] = []
    for source in SOURCES.values():
        kinds.extend(kind for kind in source.kinds if kind not in kinds)
        for _, kind, count in source.counts(now - timedelta(hours=1)):
            last_hour[kind] = last_hour.get(kind, 0) + count
        for hour, kind, count in source.counts(starts[0]):
            # The slot the hour falls in, whichever zone the source truncated it in.
            index = bisect.bisect_right(starts, hour.astimezone(UTC)) - 1
            if index >= 0:
                slots[index][kind] = slots[index].get(kind, 0) + count
    return Rejections(
        last_hour=dict(sorted(last_hour.items())),
        hours=tuple(
            HourRejections(start, dict(sorted(slot.items())))
            for start, slot in zip(starts, slots, strict=True)
        ),
        kinds=tuple(kinds),
    )


def rejections_as_dict(rejections: Rejections) -> dict[str, object]:
    return {
        "last_hour": {"total": rejections.last_hour_total, "by_kind": rejections.last_hour},
        "last_day": {"total": sum(rejections.day_by_kind.values()), "by_kind": rejections.day_by_kind},
        "hours": [
            {
                "start": timezone.localtime(hour.start).isoformat(),
                "label": hour.label,
                "total": hour.total,
                "by_kind": hour.by_kind,
            }
            for hour in rejections.hours
        ],
    }
