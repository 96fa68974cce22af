"""deploy/prometheus/kiln-alerts.yml is what `manage.py jobs prometheus-rules` prints for the defaults, and the
rules follow the same thresholds as health and the alert mails."""

from __future__ import annotations

import dataclasses
from io import StringIO
from pathlib import Path

import yaml
from django.conf import settings
from django.core.management import call_command

from jobs.health import Thresholds
from jobs.prometheus import alert_rules

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


def test_each_declared_queue_gets_its_wait_thresholds_and_a_pool_rule(settings) -> None:
    emails = dataclasses.replace(
        settings.KILN_QUEUES[1], name="emails", routes=("mail.*",), wait_warning=120, wait_critical=600
    )
    settings.KILN_QUEUES = (*settings.KILN_QUEUES, emails)
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


def test_a_late_beat_entry_has_its_rule_at_the_level_health_gives_it() -> None:
    (rule,) = rules_of(alert_rules(Thresholds(waits={}, waits_critical={}), pools=[]))["KilnScheduleLate"]
    assert (rule["expr"], rule["labels"]["severity"]) == ("kiln_schedule_late == 1", "warning")
