"""Thin tasks: routed to `default` (no route names `jobs.*`)."""

from __future__ import annotations

from celery import shared_task

from jobs import selectors, services
from jobs.alerts import alerts_check


@shared_task(name="jobs.tasks.alerts_check", ignore_result=True)
def alerts_check_task() -> list[str]:
    """Every minute: the alerts, and the queues' samples for the charts from the same snapshot (one
    broadcast to the workers, not two)."""
    snap = selectors.snapshot()
    services.queues_sample(snap=snap)
    return alerts_check(snap=snap)
