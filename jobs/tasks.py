"""Thin tasks: routed to `default` (no route names `jobs.*`)."""

from __future__ import annotations

from celery import shared_task

from jobs.alerts import alerts_check


@shared_task(name="jobs.tasks.alerts_check", ignore_result=True)
def alerts_check_task() -> list[str]:
    return alerts_check()
