"""What /metrics exposes is what Prometheus' own promtool accepts."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.prometheus import promtool, scrape_every_family

# celery-exporter's own names, kept for the dashboards written for it, break one of promtool's naming lints.
CELERY_EXPORTERS_NAMES = {
    f'{name} non-histogram and non-summary metrics should not have "_count" suffix'
    for name in ("celery_active_worker_count", "celery_active_process_count")
}


@pytest.mark.django_db
def test_promtool_accepts_a_scrape_with_every_family(client, monkeypatch) -> None:
    text = scrape_every_family(client, monkeypatch)

    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )

    problems = {line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()}
    assert problems <= CELERY_EXPORTERS_NAMES, f"promtool check metrics: {sorted(problems)}"
    # 3: lint findings only (0 without any); 1 would be an exposition promtool cannot parse.
    assert result.returncode == (3 if problems else 0), result.stdout + result.stderr
