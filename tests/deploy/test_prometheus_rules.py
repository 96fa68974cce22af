"""deploy/prometheus/kiln-alerts.yml is what `manage.py jobs prometheus-rules` prints for the defaults."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.health import Thresholds
from jobs.prometheus import alert_rules

SHIPPED = Path(settings.BASE_DIR) / "deploy" / "prometheus" / "kiln-alerts.yml"


def test_the_shipped_rules_match_the_thresholds_kiln_runs_with() -> None:
    generated = alert_rules(Thresholds.from_settings(), pools=["high", "default"])
    assert SHIPPED.read_text() == generated, (
        "regenerate: manage.py jobs prometheus-rules > deploy/prometheus/kiln-alerts.yml"
    )


def test_each_queue_gets_its_own_wait_thresholds() -> None:
    rules = alert_rules(Thresholds(waits={"high": 60}, waits_critical={"high": 300}), pools=["high"])
    assert 'kiln_queue_oldest_wait_seconds{queue="high"} > 60' in rules
    assert 'kiln_queue_oldest_wait_seconds{queue="high"} > 300' in rules
    assert 'absent(kiln_workers{pool="high"})' in rules
