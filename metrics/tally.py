"""Jobs counted over time, in memory first: each process adds its job events to a `Tally` and the history
writer (jobs/history.py) writes it with the history, off the task's hot path. Pure: no database here.

A tally is a sum of `Measure`s keyed by the start of a minute, a queue and a task. Counts and sums add up
across processes and hosts in the database; the gauges sampled each minute (queue depth, oldest wait, pool
sizes) keep their highest value. Run and wait times are counted in fixed buckets, so percentiles can be
read from any span of time by adding buckets up.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# Counters, named as celery-exporter names its events (task-sent, task-received...), so /metrics can expose
# them under its names. `failed` rows carry the exception type as their label.
COUNTERS = ("sent", "received", "started", "succeeded", "failed", "retried", "rejected", "revoked")
# Sums of seconds beside the bucket counts, for means and Prometheus' `_sum`.
SUMS = ("run_seconds", "wait_seconds")
# Sampled once a minute; a span keeps its highest sample.
GAUGES = ("depth", "oldest_wait", "running", "workers", "processes")
HISTOGRAMS = ("run", "wait")
MEASURES = (*COUNTERS, *SUMS, *GAUGES, *(f"{kind}_bucket" for kind in HISTOGRAMS))

# Bucket upper bounds in seconds: 20 ms growing by half each step, as Sidekiq's job metrics do (26 buckets up
# to 335 s for run times), continued to 3.6 hours because a wait in a paused or backed-up queue lasts far
# longer than any run; above the last bound a time falls in the +Inf bucket (index len(BOUNDS)).
BOUNDS = tuple(round(0.02 * 1.5**step, 4) for step in range(34))

MINUTE = 60
HOUR = 3600
# Rows for all time, one per queue, task, host and exception: what Prometheus counters are read from.
TOTAL = 0
SPANS = (MINUTE, HOUR, TOTAL)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_of(seconds: float) -> int:
    """The index of the first bound at or above `seconds` (len(BOUNDS) for +Inf)."""
    return bisect.bisect_left(BOUNDS, max(seconds, 0.0))


def period_start(at: datetime, span: int) -> datetime:
    if span == TOTAL:
        return EPOCH
    seconds = math.floor(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % span, UTC)


@dataclass(frozen=True, order=True)
class Key:
    """One row of the rollup table: `label` is the exception type of a failure or a bucket's index."""

    span: int
    period: datetime
    queue: str
    task_name: str
    hostname: str
    measure: str
    label: str = ""


def is_gauge(measure: str) -> bool:
    return measure in GAUGES


class Tally:
    """Measures added since the last write, already rolled up into minutes, hours and all time."""

    def __init__(self) -> None:
        self.values: dict[Key, float] = {}

    def __len__(self) -> int:
        return len(self.values)

    def add(
        self,
        measure: str,
        *,
        at: datetime,
        queue: str,
        task_name: str,
        hostname: str = "",
        label: str = "",
        value: float = 1.0,
    ) -> None:
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}")
        for span in SPANS:
            # Minutes and hours leave the host out (few rows for charts); all-time rows keep it for Prometheus.
            key = Key(
                span,
                period_start(at, span),
                queue,
                task_name,
                hostname if span == TOTAL else "",
                measure,
                label,
            )
            self._merge(key, value)

    def job_counted(
        self,
        event: str,
        *,
        at: datetime,
        queue: str,
        task_name: str,
        hostname: str = "",
        exception: str = "",
        wait: float | None = None,
        run: float | None = None,
    ) -> None:
        """One job event: its counter, and its wait (at start) or run time (at the end) in buckets."""
        place = {"at": at, "queue": queue, "task_name": task_name, "hostname": hostname}
        self.add(event, label=exception if event == "failed" else "", **place)
        for kind, seconds in (("wait", wait), ("run", run)):
            if seconds is not None:
                self.add(f"{kind}_bucket", label=str(bucket_of(seconds)), **place)
                self.add(f"{kind}_seconds", value=max(seconds, 0.0), **place)

    def merge(self, other: Tally) -> None:
        """Another tally's values added in (a write that failed is put back for the next attempt)."""
        for key, value in other.values.items():
            self._merge(key, value)

    def take(self) -> Tally:
        """Everything so far, leaving this tally empty."""
        taken = Tally()
        taken.values, self.values = self.values, {}
        return taken

    def _merge(self, key: Key, value: float) -> None:
        known = self.values.get(key)
        if known is None:
            self.values[key] = value
        elif is_gauge(key.measure):
            self.values[key] = max(known, value)
        else:
            self.values[key] = known + value


def quantile(buckets: Mapping[int, float], q: float) -> float | None:
    """The q-quantile (0..1) of times counted in buckets, interpolated linearly inside its bucket as
    Prometheus' histogram_quantile does; None without any count. Above the last bound it is that bound."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index in sorted(buckets):
        count = buckets[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            if index >= len(BOUNDS):
                return BOUNDS[-1]
            lower = BOUNDS[index - 1] if index > 0 else 0.0
            return lower + (BOUNDS[index] - lower) * max(rank - seen, 0.0) / count
        seen += count
    return BOUNDS[-1]


def buckets_added(rows: Iterable[tuple[int, float]]) -> dict[int, float]:
    total: dict[int, float] = {}
    for index, count in rows:
        total[index] = total.get(index, 0.0) + count
    return total
