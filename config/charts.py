"""Charts drawn on the server as inline SVG: no front-end build step, no script, nothing the
Content-Security-Policy must allow. Colours come from the site's stylesheet (classes `chart-series-N`), and
each point carries a <title> the browser shows on hover.

Pure: values in, markup out. A value of None is a gap (nothing was measured), not a zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 400
HEIGHT = 150
# Room for the y labels on the left and the time labels below.
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 8, 22


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Chart:
    """A drawn chart with its heading, key and a note on how to read it (templates/kiln/_charts.html)."""

    title: str
    svg: SafeString
    legend: SafeString
    note: str = ""


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def seconds_words(value: float) -> str:
    """An axis label or a hover text for a time: "20 ms", "1.5 s", "4 min", "2.5 h"."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.1f} min" if value < 600 else f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def number_words(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k" if value < 10_000 else f"{value / 1000:.0f}k"
    return f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"


def _frame(
    title: str, top: float, unit: Callable[[float], str], labels: Sequence[str], *, every_label: bool = False
) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="chart-grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="chart-axis" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{escape(unit(top * fraction))}</text>"
        )
    # The first, middle and last point's labels: enough to read a time axis without crowding it. A few
    # categories (a histogram's buckets) are each named.
    if labels:
        picks = range(len(labels)) if every_label else sorted({0, (len(labels) - 1) // 2, len(labels) - 1})
        for index in picks:
            x = LEFT + plot_w * (index + 0.5) / len(labels)
            anchor = "start" if index == 0 else ("end" if index == len(labels) - 1 else "middle")
            if every_label:
                anchor = "middle"
            parts.append(
                f'<text class="chart-axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                f"{escape(labels[index])}</text>"
            )
    return parts


def line_chart(
    *, title: str, lines: Sequence[Line], labels: Sequence[str], unit: Callable[[float], str] = number_words
) -> SafeString:
    """Lines over the same points (labels[i] names point i); a gap where a value is None."""
    values = [value for line in lines for value in line.values if value is not None]
    top = nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(labels), 1)
    parts = _frame(title, top, unit, labels)
    for number, line in enumerate(lines):
        segments: list[list[str]] = [[]]
        marks = []
        for index, value in enumerate(line.values):
            if value is None:
                segments.append([])
                continue
            x = LEFT + plot_w * (index + 0.5) / count
            y = TOP + plot_h * (1 - value / top)
            segments[-1].append(f"{x:.1f},{y:.1f}")
            label = labels[index] if index < len(labels) else ""
            marks.append(
                f'<circle class="chart-mark" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(f'{label} · {line.name} {unit(value)}')}</title></circle>"
            )
        for segment in segments:
            if len(segment) == 1:
                x, y = segment[0].split(",")
                parts.append(f'<circle class="chart-series-{number}" cx="{x}" cy="{y}" r="1.5"/>')
            elif segment:
                parts.append(f'<polyline class="chart-series-{number}" points="{" ".join(segment)}"/>')
        parts.append(f'<g class="chart-marks chart-series-{number}">{"".join(marks)}</g>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above is escaped


def bar_chart(
    *,
    title: str,
    stacks: Sequence[Line],
    labels: Sequence[str],
    unit: Callable[[float], str] = number_words,
    every_label: bool = False,
) -> SafeString:
    """Bars stacked from the first line up, one bar per label; each bar's hover text names every part."""
    count = len(labels)
    totals = [sum(line.values[index] or 0.0 for line in stacks) for index in range(count)]
    top = nice_ceiling(max(totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    width = plot_w / max(count, 1)
    parts = _frame(title, top, unit, labels, every_label=every_label)
    for index in range(count):
        base = 0.0
        x = LEFT + width * index + width * 0.1
        hover = " · ".join(f"{line.name} {unit(line.values[index] or 0.0)}" for line in stacks)
        bar = []
        for number, line in enumerate(stacks):
            value = line.values[index] or 0.0
            if value <= 0:
                continue
            y = TOP + plot_h * (1 - (base + value) / top)
            height = plot_h * value / top
            bar.append(
                f'<rect class="chart-series-{number}" x="{x:.1f}" y="{y:.1f}" width="{width * 0.8:.1f}"'
                f' height="{max(height, 0.5):.1f}"/>'
            )
            base += value
        if bar:
            label = labels[index] if index < len(labels) else ""
            parts.append(f"<g><title>{escape(f'{label} · {hover}')}</title>{''.join(bar)}</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above is escaped


def legend(names: Sequence[str]) -> SafeString:
    """The key under a chart, in the same classes as its lines."""
    items = "".join(
        f'<span class="chart-key"><span class="chart-swatch chart-swatch-{number}"></span>{escape(name)}</span>'
        for number, name in enumerate(names)
    )
    return mark_safe(f'<div class="chart-legend">{items}</div>')  # names escaped
