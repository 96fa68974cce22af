from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Task outbox"

    def ready(self) -> None:
        from django.db.models import Q

        from purge import registry

        # Published intents are kept a while: the worker recognises a late duplicate copy by its row
        # (outbox/worker.py), and an operator can see what was sent when. A copy older than this is
        # long out of any queue (far past the visibility timeout and the grace).
        registry.register(
            registry.RowTarget(
                key="outbox_published",
                label="Published task intents",
                model="outbox.Intent",
                age_field="published_at",
                default_days=7,
                only=Q(published_at__isnull=False),
            )
        )
