"""Thin tasks, routed to `default` by `purge.*`: ids in, a service call."""

from __future__ import annotations

from celery import shared_task

from purge import services


@shared_task(name="purge.tasks.purge_run")
def purge_run_task(run_id: int) -> str:
    return services.purge_run_execute(run_id=run_id)


@shared_task(name="purge.tasks.purge_nightly")
def purge_nightly_task() -> list[int]:
    return services.purge_nightly()
