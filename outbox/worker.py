"""The worker's side of the outbox: every Kiln task's base class (config/celery.py makes it the app's Task)
runs a published copy of an intent only if it is the copy the worker claimed first (outbox/services.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Ignore

logger = logging.getLogger(__name__)

# outbox.services.COPY_HEADER; repeated here because this module is imported with the Celery app, before
# Django's apps are ready (services imports the models).
COPY_HEADER = "kiln_outbox_copy"


class OutboxTask(Task):
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        copy = getattr(self.request, COPY_HEADER, None)
        if copy is None or self.request.is_eager:
            return  # not published through the outbox
        from outbox.services import intent_run_claim

        if not intent_run_claim(task_id=task_id, copy=int(copy)):
            logger.info("%s[%s]: copy %s skipped, another copy of it ran", self.name, task_id, copy)
            # Celery acknowledges the message and runs nothing; the job's record keeps the run that counts.
            raise Ignore()
