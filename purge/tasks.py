"""Thin tasks, routed to `default` by `purge.*`: ids in, a service call, and the carrying on of a long run."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from purge import services

logger = logging.getLogger(__name__)


@shared_task(name=services.PURGE_RUN_TASK)
def purge_run_task(run_id: int) -> str:
    """Work on a run for one task's time budget (KILN_PURGE_TASK_BUDGET_SECONDS, inside the queue's soft time
    limit); a run with more to do carries on in a follow-up task with the same cutoff, instead of being
    killed by the hard time limit."""
    try:
        outcome = services.purge_run_execute(run_id=run_id)
    except SoftTimeLimitExceeded:
        # The batch in flight rolled back; everything committed before it stands.
        logger.warning("purge run #%s reached the soft time limit: carrying on in a follow-up task", run_id)
        outcome = services.RunOutcome.CONTINUE
    if outcome is services.RunOutcome.CONTINUE:
        services.purge_run_enqueue(run_id=run_id)
    elif outcome is services.RunOutcome.WAIT:
        services.purge_run_enqueue(run_id=run_id, countdown=services.LOCKED_RETRY_SECONDS)
    elif outcome is services.RunOutcome.RETRY:
        services.purge_run_enqueue(run_id=run_id, countdown=services.retry_delay(run_id))
    return outcome.value


@shared_task(name="purge.tasks.purge_nightly")
def purge_nightly_task() -> list[int]:
    return services.purge_nightly()
