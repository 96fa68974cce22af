"""Beat's scheduler: django-celery-beat's DatabaseScheduler, claiming each run in the database before it
sends it through the outbox.

The leader lock (`manage.py kiln elect`, single-beat) lets one beat schedule at a time, but a lock with an
expiry cannot promise it: a leader paused past its lock time sends on until its next renewal fails, and a
leader killed between sending a task and saving its `last_run_at` leaves its successor to send that slot
again. single-beat's counter in the lock fences nothing outside Redis. So the database, which every beat
writes, holds the fence: a send first inserts (entry name, slot) under a unique constraint
(jobs.ScheduleSlot), and a beat that finds the slot taken does not send. The slot is what the entry's
schedule names for the send (jobs.schedules.send_slot), the same whichever beat computes it.

A send whose publish fails gives its slot back; a beat killed between its claim and its publish loses that
one run, which the schedule watch (jobs/schedules.py) then reports late: at most once per slot.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from jobs import schedules, services
from outbox.beat import OutboxScheduler

logger = logging.getLogger(__name__)


class SlotClaimingScheduler(OutboxScheduler):
    """Claims the slot, then sends through the outbox (outbox/beat.py): a slot due while the broker is down is
    claimed once and kept as an intent, published when the broker is back."""

    @property
    def claimed_by(self) -> str:
        """The host (as the beat lock names it, KILN_BEAT_HOST) and process of this beat."""
        return f"{settings.KILN_BEAT_HOST}:{os.getpid()}"

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        # `entry` is the one that came due: its last_run_at is the send before this one (beat advances a
        # copy, see celery.beat.Scheduler.tick), from which the slot follows.
        last = entry.last_run_at or datetime.now(UTC)
        slot = schedules.send_slot(entry.schedule, last)
        if not services.schedule_slot_claim(name=entry.name, slot=slot, claimed_by=self.claimed_by):
            logger.info(
                "Scheduler: not sending %s: its %s run was claimed by another beat",
                entry.name,
                slot.isoformat(),
            )
            return None
        try:
            result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except BaseException:
            services.schedule_slot_release(name=entry.name, slot=slot)
            raise
        # The outbox's intent (its task_id), or Celery's AsyncResult (its id).
        task_id = getattr(result, "task_id", None) or getattr(result, "id", None)
        if result is not None and task_id:
            services.schedule_slot_sent(name=entry.name, slot=slot, task_id=str(task_id))
        return result
