"""Server-drawn SVG charts: axes, gaps, stacks, escaping, empty charts."""

from __future__ import annotations

import re

import pytest

from config.charts import Line, bar_chart, legend, line_chart, nice_ceiling, number_words, seconds_words


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.3, 0.5), (1, 1), (1.01, 2), (37, 50), (120, 200), (501, 1000), (7e6, 1e7)]
)
def test_the_axis_top_is_one_two_or_five_times_a_power_of_ten(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.02, "20 ms"), (1.5, "1.5 s"), (42, "42 s"), (90, "1.5 min"), (900, "15 min"), (9000, "2.5 h")],
)
def test_times_on_an_axis_read_in_their_unit(seconds: float, words: str) -> None:
    assert seconds_words(seconds) == words


def test_counts_on_an_axis_are_short() -> None:
    assert [number_words(v) for v in (0, 2.5, 12, 1200, 25_000)] == ["0", "2.5", "12", "1.2k", "25k"]


def test_a_missing_value_breaks_the_line_instead_of_dropping_to_zero() -> None:
    svg = line_chart(title="Wait", lines=[Line("p95", [1.0, 2.0, None, 3.0, 4.0])], labels=list("abcde"))
    assert svg.count("<polyline") == 2
    assert svg.count('class="chart-mark"') == 4
    assert "0 ms" not in re.sub(r'<text class="chart-axis"[^>]*>[^<]*</text>', "", svg)


def test_a_lone_value_between_gaps_is_still_drawn() -> None:
    svg = line_chart(title="Depth", lines=[Line("waiting", [None, 5.0, None])], labels=list("abc"))
    assert "<polyline" not in svg
    assert 'r="1.5"' in svg


def test_stacked_bars_name_every_part_on_hover() -> None:
    svg = bar_chart(
        title="Finished",
        stacks=[Line("succeeded", [30.0, 0.0]), Line("failed", [2.0, 0.0])],
        labels=["10:00", "10:01"],
    )
    assert "<title>10:00 · succeeded 30 · failed 2</title>" in svg
    assert svg.count("<rect") == 2  # nothing drawn for the empty minute
    assert ">50</text>" in svg  # 32 rounds up to an axis top of 50


def test_names_and_titles_are_escaped() -> None:
    svg = line_chart(title="<script>", lines=[Line("<b>", [1.0])], labels=["<i>"])
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "<b>" not in svg
    assert "<i>" not in svg
    assert "<b>" not in legend(["<b>"])


def test_a_chart_without_points_draws_its_empty_frame() -> None:
    assert "<svg" in bar_chart(title="Removed", stacks=[Line("rows", [])], labels=[])
    assert "<svg" in line_chart(title="Wait", lines=[Line("p95", [])], labels=[])
