"""Beat's sends through the outbox (CELERY_BEAT_SCHEDULER): a slot sent while the broker is down is written
as an intent, and published by beat's next slot of the entry or by the sweep, instead of being lost.

Relies on two private members of celery.beat.Scheduler, as its own apply_async uses them (checked against
Celery 5.7.0; tests/outbox/test_beat.py fails, naming the member, when an upgrade drops one):
`_tasks_since_sync` and `_do_sync` (CELERY_BEAT_SYNC_EVERY's count: beat writes last_run_at as it sends)."""

from __future__ import annotations

from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

UPSTREAM_PRIVATE_MEMBERS = ("_tasks_since_sync", "_do_sync")


class OutboxScheduler(DatabaseScheduler):
    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        from outbox.services import beat_send

        entry = self.reserve(entry) if advance else entry
        try:
            return beat_send(
                entry_name=entry.name,
                task_name=entry.task,
                args=entry.args,
                kwargs=entry.kwargs,
                options=entry.options,
            )
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
