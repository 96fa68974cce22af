"""The extractor the rule and dashboard tests rely on: it must find every metric and nothing else."""

from __future__ import annotations

import pytest

from tests.support.promql import matched_labels, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("kiln_broker_up == 0", {"kiln_broker_up"}),
        ('up{job="kiln"} == 0', {"up"}),
        (
            'absent(kiln_workers{pool="high"}) or kiln_workers{pool="high"} == 0',
            {"kiln_workers"},
        ),
        (
            "sum by (name) (rate(celery_task_failed_total[10m])) / (sum by (name)"
            " (rate(celery_task_failed_total[10m])) + sum by (name) (rate(celery_task_succeeded_total[10m])))"
            " > 0.05",
            {"celery_task_failed_total", "celery_task_succeeded_total"},
        ),
        (
            'histogram_quantile(0.95, sum by (le, name) (rate(celery_task_runtime_bucket{name=~"$task",'
            ' queue_name=~"${queue:regex}"}[$__rate_interval])))',
            {"celery_task_runtime_bucket"},
        ),
        (
            "kiln_queue_oldest_wait_seconds > on (queue) group_left (severity) kiln_threshold offset 5m",
            {"kiln_queue_oldest_wait_seconds", "kiln_threshold"},
        ),
        ("sum(rate(x_total[5m:1m])) without (hostname, exception) > bool 1e3", {"x_total"}),
        ("count(celery_worker_up == 0) or vector(0)", {"celery_worker_up"}),
        ("max_over_time(kiln_queue_depth[1h] @ end())", {"kiln_queue_depth"}),
    ],
)
def test_it_finds_the_metrics_and_skips_functions_keywords_labels_and_durations(expr, names) -> None:
    assert metric_names(expr) == names


def test_it_refuses_a_function_promql_does_not_have() -> None:
    with pytest.raises(ValueError, match="rat"):
        metric_names("rat(celery_task_failed_total[5m])")


def test_it_reads_the_labels_each_metric_is_matched_on() -> None:
    expr = (
        'sum by (name) (rate(celery_task_failed_total{name=~"$task", queue_name=~"${queue}", exception!=""}[5m]))'
        ' / kiln_queue_depth{queue="a,b=c"} + celery_worker_up'
    )
    assert matched_labels(expr) == {
        "celery_task_failed_total": {"name", "queue_name", "exception"},
        "kiln_queue_depth": {"queue"},
    }
