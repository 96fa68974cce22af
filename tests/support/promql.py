"""The metric names a PromQL expression selects, for tests that hold the alert rules and the Grafana dashboard
to what /metrics exposes.

Not a parser: the expression is tokenised after dropping what cannot hold a metric name (strings, label
matchers, ranges and subqueries, the label lists of by/without/on/ignoring/group_left/group_right, Grafana's
variables). A name followed by "(" must be a PromQL function or aggregation, so a misspelt function fails
here instead of being taken for a metric.
"""

from __future__ import annotations

import re

# PromQL's functions, aggregations and keywords as of Prometheus 3 (a name here is never a metric's).
_FUNCTIONS = """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv
    double_exponential_smoothing exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
    histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase info irate label_join
    label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
    sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
    time timestamp vector year
"""
_AGGREGATIONS = (
    "avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum topk"
)
# Binary operators and modifiers, and `@ start()`/`end()`.
_KEYWORDS = "and or unless atan2 bool offset by without on ignoring group_left group_right start end inf nan"
FUNCTIONS = frozenset(_FUNCTIONS.split())
AGGREGATIONS = frozenset(_AGGREGATIONS.split())
KEYWORDS = frozenset(_KEYWORDS.split())

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
# Grafana's ${var}, $var and [[var]] (its range variables such as $__rate_interval among them).
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(
    # A number or a duration first, so that the "m" of 5m is never read as a name.
    r"(?P<number>(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)[a-zA-Z]*)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?"
)


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects; ValueError for a call to something PromQL does not have."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name is None:
            continue
        if token.group("call"):
            if name not in FUNCTIONS | AGGREGATIONS | KEYWORDS:
                raise ValueError(f"{name}() is not a PromQL function or aggregation, in: {expr}")
            continue
        if name not in KEYWORDS | AGGREGATIONS:
            names.add(name)
    return names


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def matched_labels(expr: str) -> dict[str, set[str]]:
    """The label names each metric is matched on: {"celery_queue_length": {"queue_name"}} for
    celery_queue_length{queue_name=~"$queue"}."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    found: dict[str, set[str]] = {}
    for selector in _SELECTOR.finditer(text):
        found.setdefault(selector.group(1), set()).update(_MATCHER.findall(selector.group(2)))
    return found
