"""deploy/prometheus/kiln-alerts.yml is what `manage.py jobs prometheus-rules` prints for the defaults, and the
rules follow the same thresholds as health and the alert mails."""

from __future__ import annotations

import dataclasses
import subprocess
from io import StringIO
from pathlib import Path

import yaml
from django.conf import settings
from django.core.management import call_command

from jobs.health import Thresholds
from jobs.prometheus import alert_rules
from tests.support.prometheus import promtool

SHIPPED = Path(settings.BASE_DIR) / "deploy" / "prometheus" / "kiln-alerts.yml"


def rules_of(text: str) -> dict[str, list[dict]]:
    document = yaml.safe_load(text)
    (group,) = document["groups"]
    found: dict[str, list[dict]] = {}
    for rule in group["rules"]:
        found.setdefault(rule["alert"], []).append(rule)
    return found


def test_the_shipped_rules_are_what_the_command_prints_for_the_defaults() -> None:
    out = StringIO()
    call_command("jobs", "prometheus-rules", stdout=out)
    assert SHIPPED.read_text() == out.getvalue(), (
        "regenerate: manage.py jobs prometheus-rules > deploy/prometheus/kiln-alerts.yml"
    )


def promtool_check_rules(path: Path) -> subprocess.CompletedProcess:
    # --lint-fatal: without it promtool prints "FAILED" for duplicate rules and still exits 0.
    return subprocess.run(
        [promtool(), "check", "rules", "--lint-fatal", str(path)], capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_the_shipped_rules_lint_included() -> None:
    result = promtool_check_rules(SHIPPED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def three_queues(settings) -> None:
    emails = dataclasses.replace(
        settings.KILN_QUEUES[1], name="emails", routes=("mail.*",), wait_warning=120, wait_critical=600
    )
    settings.KILN_QUEUES = (*settings.KILN_QUEUES, emails)


def test_promtool_accepts_the_rules_of_any_number_of_queues(settings, tmp_path) -> None:
    three_queues(settings)
    rules = tmp_path / "rules.yml"
    rules.write_text(alert_rules(Thresholds.from_settings(), pools=[q.pool for q in settings.KILN_QUEUES]))

    result = promtool_check_rules(rules)

    assert result.returncode == 0, result.stdout + result.stderr
    # Each queue's rule of an alert is told apart by its labels, as promtool's duplicate lint asks.
    found = rules_of(rules.read_text())
    for name, group in found.items():
        label_sets = [tuple(sorted(rule["labels"].items())) for rule in group]
        assert len(set(label_sets)) == len(label_sets), f"{name} repeats a label set: {label_sets}"
    assert {rule["labels"]["queue"] for rule in found["KilnQueueWaitWarning"]} == {
        "default",
        "high",
        "emails",
    }


def test_each_declared_queue_gets_its_wait_thresholds_and_a_pool_rule(settings) -> None:
    three_queues(settings)
    rules = rules_of(alert_rules(Thresholds.from_settings(), pools=[q.pool for q in settings.KILN_QUEUES]))
    waits = {
        (rule["labels"]["severity"], rule["expr"])
        for name in ("KilnQueueWaitWarning", "KilnQueueWaitCritical")
        for rule in rules[name]
    }
    assert ("warning", 'kiln_queue_oldest_wait_seconds{queue="emails"} > 120') in waits
    assert ("critical", 'kiln_queue_oldest_wait_seconds{queue="emails"} > 600') in waits
    assert ("warning", 'kiln_queue_oldest_wait_seconds{queue="high"} > 60') in waits
    pools = [rule["expr"] for rule in rules["KilnPoolDown"]]
    assert 'absent(kiln_workers{pool="emails"}) or kiln_workers{pool="emails"} == 0' in pools


def test_the_depth_and_failure_rules_use_the_health_thresholds() -> None:
    thresholds = Thresholds(waits={}, waits_critical={}, depth_warning=7, depth_critical=70, failed_warning=3)
    rules = rules_of(alert_rules(thresholds, pools=[]))
    assert rules["KilnQueueDepthWarning"][0]["expr"] == "kiln_queue_depth >= 7"
    assert rules["KilnQueueDepthCritical"][0]["expr"] == "kiln_queue_depth > 70"
    assert rules["KilnFailedJobsWarning"][0]["expr"] == "kiln_failed_jobs >= 3"
