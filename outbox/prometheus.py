"""The outbox on /metrics: what waits to be published, so a rule notices intents stuck behind a dead broker."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily

from outbox.selectors import backlog


class OutboxCollector:
    def collect(self) -> Any:
        waiting = backlog()
        yield GaugeMetricFamily(
            "kiln_outbox_unpublished",
            "tasks written to the outbox and not published yet",
            value=waiting.unpublished,
        )
        yield GaugeMetricFamily(
            "kiln_outbox_oldest_unpublished_age_seconds",
            "how long the oldest unpublished task has waited (0 when none waits)",
            value=waiting.oldest_age or 0.0,
        )
