"""Celery's Redis result backend, except that a RETRY state it cannot store is logged, not raised.

Kiln ignores results (every task records its outcome in the database), but Celery still stores states on
some paths. One of them loses jobs: on a lost broker connection the worker cancels its running acks_late
jobs and stores RETRY for each; with Redis down that store raises, the cancellation is not recorded, the
end of the terminated pool process is then taken for a revoke, and the message is acknowledged. The job
is gone (tests/faults/test_redis_restart.py showed it). With the store made harmless, the cancelled job
stays unacknowledged and comes back (jobs/recovery.py puts a worker's forgotten jobs back).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.backends.redis import RedisBackend

logger = logging.getLogger(__name__)


class KilnRedisBackend(RedisBackend):
    def mark_as_retry(self, task_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().mark_as_retry(task_id, *args, **kwargs)
        except (*self.connection_errors, OSError) as error:
            logger.warning("could not store RETRY for task %s (%s); results are not used", task_id, error)
            return None
