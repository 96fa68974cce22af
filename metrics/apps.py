from __future__ import annotations

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics over time"

    def ready(self) -> None:
        from django.db.models import Q

        from metrics.tally import HOUR, MINUTE
        from purge import registry

        # Sidekiq keeps minutes for 8 hours and Horizon 2 hours in all: minutes for two days let an operator
        # read last night at full detail; hours for 90 days show a season. Admins edit the days in the policies.
        registry.register(
            registry.RowTarget(
                key="metrics_minutes",
                label="Job metrics by the minute",
                model="metrics.Tally",
                age_field="period",
                default_days=2,
                only=Q(span=MINUTE),
            )
        )
        registry.register(
            registry.RowTarget(
                key="metrics_hours",
                label="Job metrics by the hour",
                model="metrics.Tally",
                age_field="period",
                default_days=90,
                only=Q(span=HOUR),
            )
        )
