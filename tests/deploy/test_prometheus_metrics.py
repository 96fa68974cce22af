"""What /metrics exposes is what Prometheus' own promtool accepts."""

from __future__ import annotations

import pytest

from tests.support.prometheus import promtool_check_metrics, scrape_every_family


@pytest.mark.django_db
def test_promtool_accepts_a_scrape_with_every_family(client, monkeypatch) -> None:
    text = scrape_every_family(client, monkeypatch)

    assert promtool_check_metrics(text) == set()
