"""The charts of the jobs dashboard and the task pages, drawn from the metrics over time (metrics/)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from config import charts
from config.charts import Chart, Line
from metrics.selectors import Series, Window, series
from metrics.tally import BOUNDS


def point_label(start: datetime, window: Window) -> str:
    local = timezone.localtime(start)
    if window.step >= 24 * 3600:
        return f"{local.day} {local:%b}"
    if window.length.days >= 2:
        return f"{local.day} {local:%b} {local:%H:%M}"
    return f"{local:%H:%M}"


def _labels(data: Series) -> list[str]:
    return [point_label(point.start, data.window) for point in data.points]


def _per_minute(value: float, window: Window) -> float:
    return value / window.minutes_per_point


def finished_chart(data: Series, *, title: str = "Jobs finished per minute") -> Chart:
    window = data.window
    stacks = [
        Line("succeeded", [_per_minute(point.count("succeeded"), window) for point in data.points]),
        Line("failed", [_per_minute(point.count("failed"), window) for point in data.points]),
    ]
    note = "" if window.step == 60 else f"averaged over {charts.seconds_words(window.step)}"
    return Chart(
        title,
        charts.bar_chart(title=title, stacks=stacks, labels=_labels(data)),
        charts.legend(["succeeded", "failed"]),
        note,
    )


def percentiles_chart(data: Series, *, kind: str, title: str, quantiles: tuple[float, ...]) -> Chart:
    lines = [
        Line(f"p{round(q * 100)}", [point.quantile(kind, q) for point in data.points]) for q in quantiles
    ]
    return Chart(
        title,
        charts.line_chart(title=title, lines=lines, labels=_labels(data), unit=charts.seconds_words),
        charts.legend([line.name for line in lines]),
        "no line where no job started or ended",
    )


def depth_chart(data: Series) -> Chart:
    title = "Jobs waiting (highest sample)"
    line = Line("waiting", [point.gauges.get("depth") for point in data.points])
    return Chart(
        title,
        charts.line_chart(title=title, lines=[line], labels=_labels(data)),
        charts.legend(["waiting"]),
        "sampled each minute; no line while nothing was sampled",
    )


def queue_charts(*, window: Window, queue: str) -> list[Chart]:
    data = series(window=window, queue=queue)
    return [
        finished_chart(data),
        percentiles_chart(data, kind="wait", title="Wait before start", quantiles=(0.5, 0.95, 0.99)),
        percentiles_chart(data, kind="run", title="Run time", quantiles=(0.95,)),
        depth_chart(data),
    ]


def queues_side_by_side(*, window: Window, queues: list[str]) -> list[tuple[str, list[tuple[str, Chart]]]]:
    """One row per chart, one column per queue: the queues compare at a glance."""
    by_queue = {queue: queue_charts(window=window, queue=queue) for queue in queues}
    rows = []
    for index, chart in enumerate(by_queue[queues[0]] if queues else []):
        rows.append((chart.title, [(queue, by_queue[queue][index]) for queue in queues]))
    return rows


def task_charts(*, window: Window, task_name: str) -> tuple[Series, list[Chart]]:
    data = series(window=window, task_name=task_name)
    return data, [
        finished_chart(data),
        percentiles_chart(data, kind="run", title="Run time", quantiles=(0.5, 0.95, 0.99)),
        percentiles_chart(data, kind="wait", title="Wait before start", quantiles=(0.5, 0.95, 0.99)),
    ]


def histogram_chart(data: Series, *, kind: str = "run") -> Chart:
    """The run times of the window's jobs by bucket, from the first bucket used to the last."""
    counts = data.total().buckets[kind]
    title = "Run times" if kind == "run" else "Waits"
    if not counts:
        return Chart(
            title, charts.bar_chart(title=title, stacks=[], labels=[]), charts.legend([]), "no job ended"
        )
    first, last = min(counts), max(counts)
    indexes = range(first, last + 1)
    labels = [
        f"≤ {charts.seconds_words(BOUNDS[index])}" if index < len(BOUNDS) else "longer" for index in indexes
    ]
    stacks = [Line("jobs", [counts.get(index, 0.0) for index in indexes])]
    # Up to eight buckets are each named; more would overlap (the hover text still names each).
    svg = charts.bar_chart(title=title, stacks=stacks, labels=labels, every_label=len(labels) <= 8)
    return Chart(title, svg, charts.legend(["jobs"]), "each bar: the jobs whose run time fell in that bucket")
