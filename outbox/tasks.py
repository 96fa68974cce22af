"""Thin tasks, routed to `default` by `outbox.*`."""

from __future__ import annotations

from celery import shared_task

from outbox import services


@shared_task(name=services.SWEEP_TASK)
def sweep_task() -> int:
    return services.intents_sweep()
