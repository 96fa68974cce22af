"""Reads of the metrics over time: a window of rows binned into points for charts, and per-task summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db.models import Max, Sum
from django.utils import timezone

from config.charts import seconds_words
from metrics.models import Tally
from metrics.tally import COUNTERS, GAUGES, HISTOGRAMS, HOUR, MINUTE, SUMS, TOTAL, quantile


@dataclass(frozen=True)
class Window:
    key: str
    title: str
    span: int  # the rows it reads: minutes or hours
    length: timedelta
    step: int  # seconds per point

    @property
    def minutes_per_point(self) -> float:
        return self.step / 60


WINDOWS = {
    window.key: window
    for window in (
        Window("1h", "last hour", MINUTE, timedelta(hours=1), 60),
        Window("24h", "last 24 hours", MINUTE, timedelta(hours=24), 600),
        Window("7d", "last 7 days", HOUR, timedelta(days=7), HOUR),
        Window("90d", "last 90 days", HOUR, timedelta(days=90), 24 * HOUR),
    )
}
DEFAULT_WINDOW = "24h"


def window_named(key: str | None) -> Window:
    """The window a request asks for; anything else is the default (a chart never fails on a bad link)."""
    return WINDOWS.get(key or "", WINDOWS[DEFAULT_WINDOW])


@dataclass
class Point:
    start: datetime
    counts: dict[str, float] = field(default_factory=dict)
    failures: dict[str, float] = field(default_factory=dict)  # exception type -> count
    sums: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[int, float]] = field(default_factory=lambda: {kind: {} for kind in HISTOGRAMS})
    gauges: dict[str, float] = field(default_factory=dict)

    def count(self, counter: str) -> float:
        return self.counts.get(counter, 0.0)

    def finished(self) -> float:
        return self.count("succeeded") + self.count("failed")

    def quantile(self, kind: str, q: float) -> float | None:
        return quantile(self.buckets[kind], q)


@dataclass
class Series:
    window: Window
    points: list[Point]

    def total(self) -> Point:
        """Every point added into one: the window's counts and histograms (gauges keep the highest)."""
        total = Point(self.points[0].start if self.points else timezone.now())
        for point in self.points:
            _point_add(total, point)
        return total


def _point_add(into: Point, point: Point) -> None:
    for name, value in point.counts.items():
        into.counts[name] = into.counts.get(name, 0.0) + value
    for name, value in point.failures.items():
        into.failures[name] = into.failures.get(name, 0.0) + value
    for name, value in point.sums.items():
        into.sums[name] = into.sums.get(name, 0.0) + value
    for kind, buckets in point.buckets.items():
        for index, value in buckets.items():
            into.buckets[kind][index] = into.buckets[kind].get(index, 0.0) + value
    for name, value in point.gauges.items():
        into.gauges[name] = max(into.gauges.get(name, value), value)


def series(
    *, window: Window, queue: str | None = None, task_name: str | None = None, now: datetime | None = None
) -> Series:
    """The window ending now, one point per step (oldest first). Counts are summed over the tasks of a queue
    (or the queues of a task); gauges are per queue, so a task's series has none."""
    now = now or timezone.now()
    # Points start on whole steps of the local clock: a day's point is a local day.
    offset = int(timezone.localtime(now).utcoffset().total_seconds())
    last = math.floor((now.timestamp() + offset) / window.step) * window.step - offset
    count = math.ceil(window.length.total_seconds() / window.step)
    starts = [last - window.step * index for index in range(count - 1, -1, -1)]
    points = {start: Point(datetime.fromtimestamp(start, UTC)) for start in starts}
    rows = Tally.objects.filter(
        span=window.span,
        period__gte=datetime.fromtimestamp(starts[0], UTC),
        period__lt=datetime.fromtimestamp(last + window.step, UTC),
    )
    if queue is not None:
        rows = rows.filter(queue=queue)
    if task_name is not None:
        rows = rows.filter(task_name=task_name)
    grouped = (
        rows.values("period", "measure", "label")
        .annotate(total=Sum("value"), highest=Max("value"))
        .order_by()
    )
    for row in grouped:
        start = math.floor((row["period"].timestamp() + offset) / window.step) * window.step - offset
        point = points.get(start)
        if point is None:
            continue
        _row_add(point, row["measure"], row["label"], row["total"], row["highest"])
    return Series(window, [points[start] for start in starts])


def _row_add(point: Point, measure: str, label: str, total: float, highest: float) -> None:
    if measure in COUNTERS:
        point.counts[measure] = point.counts.get(measure, 0.0) + total
        if measure == "failed":
            point.failures[label] = point.failures.get(label, 0.0) + total
    elif measure in SUMS:
        point.sums[measure] = point.sums.get(measure, 0.0) + total
    elif measure in GAUGES:
        point.gauges[measure] = max(point.gauges.get(measure, highest), highest)
    elif measure.endswith("_bucket") and label.isdigit():
        kind = measure.removesuffix("_bucket")
        index = int(label)
        point.buckets[kind][index] = point.buckets[kind].get(index, 0.0) + total


def task_names() -> list[str]:
    """Every task ever counted, by name, from the all-time rows (a few per task and host): what the job
    history's task filter offers, where a DISTINCT over a million jobs would cost a second."""
    names = Tally.objects.filter(span=TOTAL).exclude(task_name="").values_list("task_name", flat=True)
    return list(names.order_by("task_name").distinct())


def exception_types() -> list[str]:
    """Every exception type a job ever failed with, from the all-time rows of failures."""
    labels = (
        Tally.objects.filter(span=TOTAL, measure="failed").exclude(label="").values_list("label", flat=True)
    )
    return list(labels.order_by("label").distinct())


def task_known(task_name: str) -> bool:
    """Whether any job of `task_name` was ever counted (all-time rows are never trimmed). A name no task can
    have (a NUL, which PostgreSQL refuses in a query) is simply unknown."""
    if not task_name or "\x00" in task_name or len(task_name) > 200:
        return False
    return Tally.objects.filter(span=TOTAL, task_name=task_name).exclude(task_name="").exists()


@dataclass(frozen=True)
class TaskSummary:
    task_name: str
    queues: tuple[str, ...]
    succeeded: int
    failed: int
    retried: int
    run_p50: float | None
    run_p95: float | None
    wait_p95: float | None
    run_mean: float | None

    @property
    def failure_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return self.failed / finished if finished else None

    # For the pages: "1.2 s", "0.4 %", "—" where nothing was measured.
    @property
    def failure_rate_words(self) -> str:
        return "—" if self.failure_rate is None else f"{self.failure_rate * 100:.1f} %"

    @property
    def run_p50_words(self) -> str:
        return _seconds(self.run_p50)

    @property
    def run_p95_words(self) -> str:
        return _seconds(self.run_p95)

    @property
    def run_mean_words(self) -> str:
        return _seconds(self.run_mean)

    @property
    def wait_p95_words(self) -> str:
        return _seconds(self.wait_p95)


def _seconds(value: float | None) -> str:
    return "—" if value is None else seconds_words(value)


def task_summary(task_name: str, point: Point, queues: tuple[str, ...] = ()) -> TaskSummary:
    runs = sum(point.buckets["run"].values())
    return TaskSummary(
        task_name=task_name,
        queues=queues,
        succeeded=int(point.count("succeeded")),
        failed=int(point.count("failed")),
        retried=int(point.count("retried")),
        run_p50=point.quantile("run", 0.5),
        run_p95=point.quantile("run", 0.95),
        wait_p95=point.quantile("wait", 0.95),
        run_mean=point.sums.get("run_seconds", 0.0) / runs if runs else None,
    )


def task_summaries(*, window: Window, now: datetime | None = None) -> list[TaskSummary]:
    """Each task seen in the window, busiest first: what Sidekiq's Metrics page lists."""
    now = now or timezone.now()
    rows = (
        Tally.objects.filter(span=window.span, period__gte=now - window.length, period__lte=now)
        .exclude(task_name="")
        .values("task_name", "queue", "measure", "label")
        .annotate(total=Sum("value"))
        .order_by()
    )
    points: dict[str, Point] = {}
    queues: dict[str, set[str]] = {}
    for row in rows:
        point = points.setdefault(row["task_name"], Point(now))
        if row["queue"]:
            queues.setdefault(row["task_name"], set()).add(row["queue"])
        _row_add(point, row["measure"], row["label"], row["total"], row["total"])
    summaries = [
        task_summary(task_name, point, tuple(sorted(queues.get(task_name, ()))))
        for task_name, point in points.items()
    ]
    return sorted(summaries, key=lambda summary: (-(summary.succeeded + summary.failed), summary.task_name))


class TotalRow(NamedTuple):
    queue: str
    task_name: str
    hostname: str
    measure: str
    label: str
    value: float


def totals() -> list[TotalRow]:
    """The all-time rows of counters, sums and buckets, per queue, task and host, in one query: what
    /metrics exposes as Prometheus counters and histograms. They only ever grow, whichever process reads
    them. The sampled gauges are left out: their all-time highest says nothing about now."""
    rows = (
        Tally.objects.filter(span=TOTAL)
        .exclude(measure__in=GAUGES)
        .values_list("queue", "task_name", "hostname", "measure", "label", "value")
    )
    return [TotalRow(*row) for row in rows]
