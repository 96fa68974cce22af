"""deploy/grafana/kiln.json is a dashboard Grafana imports, and every query in it reads metrics and labels
that /metrics exposes."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.support.prometheus import scrape_every_family
from tests.support.promql import matched_labels, metric_names

SHIPPED = Path(settings.BASE_DIR) / "deploy" / "grafana" / "kiln.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANEL_TYPES = {"row", "stat", "state-timeline", "timeseries"}
GRID_COLUMNS = 24
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def dashboard() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text())


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def targets() -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in panels() for target in panel["targets"]]


def variable_queries() -> list[tuple[str, str]]:
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((variable["name"], query["query"] if isinstance(query, dict) else query))
    return found


def test_it_has_what_grafana_needs_to_import_it() -> None:
    board = dashboard()
    assert board["title"] == "Kiln"
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"]), "Grafana's uids are at most 40 such characters"
    assert 36 <= board["schemaVersion"] <= 41
    assert board["id"] is None  # set by the Grafana it is imported into
    assert isinstance(board["templating"]["list"], list)
    # The datasource is chosen at import time: every panel, query and variable names the input.
    (source,) = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
    for title, target in targets():
        assert target["datasource"] == DATASOURCE, title
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE, variable["name"]


def test_every_panel_has_a_type_a_title_queries_and_a_place_of_its_own() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    boxes = []
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel
        assert panel["title"].strip()
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("h", "w", "x", "y")), panel["title"]
        assert min(grid["w"], grid["h"]) > 0, panel["title"]
        assert min(grid["x"], grid["y"]) >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"{panel['title']} runs off the grid"
        boxes.append((panel["title"], grid))
        if panel["type"] != "row":
            refs = [target["refId"] for target in panel["targets"]]
            assert refs, f"{panel['title']} has no query"
            assert len(refs) == len(set(refs)), panel["title"]
            assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
    for (first, a), (second, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{first} and {second} overlap"


def test_it_shows_what_the_issue_asks_for() -> None:
    queries = " ".join(target["expr"] for _, target in targets())
    for needed in (
        "celery_queue_length",
        "kiln_queue_oldest_wait_seconds",
        "celery_task_succeeded_total",
        "celery_task_failed_total",
        "histogram_quantile(0.5, sum by (le) (rate(celery_task_runtime_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(celery_task_runtime_bucket",
        "histogram_quantile(0.95, sum by (queue_name, le) (rate(celery_task_queue_wait_time_bucket",
        "celery_worker_up",
        "celery_active_process_count",
        "kiln_health",
    ):
        assert needed in queries, needed


def labels_by_sample(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


@pytest.mark.django_db
def test_every_metric_and_label_it_reads_is_one_metrics_exposes(client, monkeypatch) -> None:
    exposed = labels_by_sample(scrape_every_family(client, monkeypatch))
    for title, target in targets():
        expr = target["expr"]
        names = metric_names(expr)
        missing = names - set(exposed)
        assert not missing, f"{title!r} reads {sorted(missing)}, which /metrics never exposes"
        for name, labels in matched_labels(expr).items():
            # kiln_* name their queue label `queue`, celery-exporter's `queue_name`.
            assert labels <= exposed[name], f"{title!r}: {name} has no label {sorted(labels - exposed[name])}"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        carried = set().union(*(exposed[name] for name in names))
        assert legend <= carried, (
            f"{title!r}: the legend names {sorted(legend - carried)}, no series carries it"
        )
    for variable, query in variable_queries():
        parsed = _LABEL_VALUES.match(query)
        assert parsed, f"${variable}: {query}"
        (name,) = metric_names(parsed.group("selector") or "")
        assert name in exposed, f"${variable} reads {name}, which /metrics never exposes"
        assert parsed.group("label") in exposed[name], (
            f"${variable}: {name} has no label {parsed.group('label')}"
        )
