"""deploy/prometheus/kiln-alerts.yml is what `manage.py jobs prometheus-rules` prints for the defaults, and the
rules follow the same thresholds as health and the alert mails."""

from __future__ import annotations

import dataclasses
import subprocess
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from jobs.health import Thresholds
from jobs.prometheus import alert_rules
from tests.support.prometheus import promtool, sample_names, scrape_every_family
from tests.support.promql import metric_names

SHIPPED = Path(settings.BASE_DIR) / "deploy" / "prometheus" / "kiln-alerts.yml"
# Series Prometheus makes itself for each target it scrapes.
PROMETHEUS_OWN = {"up"}


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


@pytest.mark.django_db
def test_every_metric_the_rules_read_is_one_metrics_exposes(client, monkeypatch) -> None:
    exposed = sample_names(scrape_every_family(client, monkeypatch)) | PROMETHEUS_OWN
    for name, group in rules_of(SHIPPED.read_text()).items():
        for rule in group:
            missing = metric_names(rule["expr"]) - exposed
            assert not missing, f"{name} reads {sorted(missing)}, which /metrics never exposes"


def worker_series(**labels: str) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def promtool_test_rules(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess:
    """`promtool test rules`: the shipped rules evaluated on made-up series, minute by minute."""
    spec = tmp_path / "alerts-test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(SHIPPED)], "evaluation_interval": "1m", "tests": tests})
    )
    return subprocess.run(
        [promtool(), "test", "rules", str(spec)], capture_output=True, text=True, timeout=60
    )


def task(name: str, counter: str, values: str, exception: str | None = None) -> dict[str, str]:
    labels = {"name": name, "hostname": "high@w1", "queue_name": "high"}
    if exception is not None:
        labels["exception"] = exception
    return {"series": f"celery_task_{counter}_total{worker_series(**labels)}", "values": values}


def test_a_task_failing_more_than_5_percent_over_10_minutes_alerts(tmp_path) -> None:
    # Per minute: "sometimes" fails 1 of 11 jobs (9 %), "rarely" 1 of 101 (1 %), "always" every one of
    # its jobs, with its succeeded counter at 0 as /metrics gives it; "idle" runs nothing.
    series = [
        task("sometimes", "failed", "0+1x30", exception="OSError"),
        task("sometimes", "succeeded", "0+10x30"),
        task("rarely", "failed", "0+1x30", exception="OSError"),
        task("rarely", "succeeded", "0+100x30"),
        task("always", "failed", "0+2x30", exception="ValueError"),
        task("always", "succeeded", "0x30"),
        task("idle", "failed", "0x30", exception=""),
        task("idle", "succeeded", "0x30"),
    ]

    def firing(name: str, share: str) -> dict:
        return {
            "exp_labels": {"severity": "warning", "name": name},
            "exp_annotations": {"summary": f"{name} failed {share} of its jobs in the last 10 minutes"},
        }

    result = promtool_test_rules(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "KilnTaskFailureRate",
                        "exp_alerts": [firing("always", "100%"), firing("sometimes", "9.091%")],
                    }
                ],
            }
        ],
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_worker_silent_for_2_minutes_alerts_unless_the_broker_is_down(tmp_path) -> None:
    # high@w1 stops answering after minute 5; default@w1 answers throughout.
    workers = [
        {"series": f"celery_worker_up{worker_series(hostname='high@w1')}", "values": "1x5 0x10"},
        {"series": f"celery_worker_up{worker_series(hostname='default@w1')}", "values": "1x15"},
    ]
    down = {
        "exp_labels": {"severity": "warning", "hostname": "high@w1"},
        "exp_annotations": {"summary": "worker high@w1 has not answered for 2 minutes"},
    }

    def case(broker: str, expected: list[dict]) -> dict:
        return {
            "interval": "1m",
            "input_series": [*workers, {"series": "kiln_broker_up", "values": broker}],
            "alert_rule_test": [
                {"eval_time": "7m", "alertname": "KilnWorkerDown", "exp_alerts": []},  # 1 minute: pending
                {"eval_time": "9m", "alertname": "KilnWorkerDown", "exp_alerts": expected},
            ],
        }

    result = promtool_test_rules(tmp_path, [case("1x15", [down]), case("1x5 0x10", [])])

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_late_beat_entry_has_its_rule_at_the_level_health_gives_it() -> None:
    (rule,) = rules_of(alert_rules(Thresholds(waits={}, waits_critical={}), pools=[]))["KilnScheduleLate"]
    assert (rule["expr"], rule["labels"]["severity"]) == ("kiln_schedule_late == 1", "warning")


def test_a_media_store_down_for_a_minute_is_critical_and_an_outbox_backlog_past_its_threshold_warns(
    tmp_path,
) -> None:
    # The store fails from minute 3; the oldest unpublished intent ages a minute a minute from minute 2.
    series = [
        {"series": "kiln_media_store_up", "values": "1x2 0x10"},
        {"series": "kiln_outbox_oldest_unpublished_age_seconds", "values": "0x1 0+60x10"},
    ]
    store_down = {
        "exp_labels": {"severity": "critical"},
        "exp_annotations": {
            "summary": "Kiln's media store cannot be used: uploads get 503, thumbnail jobs retry "
            "(jobs health says why)"
        },
    }
    backlog = {
        "exp_labels": {"severity": "warning"},
        "exp_annotations": {
            "summary": "tasks wait unpublished in the outbox for over 300 s: is the broker reachable? "
            "(`manage.py outbox status`)"
        },
    }
    result = promtool_test_rules(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "KilnMediaStoreDown", "exp_alerts": []},  # pending
                    {"eval_time": "5m", "alertname": "KilnMediaStoreDown", "exp_alerts": [store_down]},
                    {
                        "eval_time": "7m",
                        "alertname": "KilnOutboxBacklog",
                        "exp_alerts": [],
                    },  # 300 s: not over
                    {"eval_time": "9m", "alertname": "KilnOutboxBacklog", "exp_alerts": [backlog]},
                ],
            }
        ],
    )

    assert result.returncode == 0, result.stdout + result.stderr
