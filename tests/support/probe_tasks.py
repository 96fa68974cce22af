"""Tasks that only tests and benchmarks load into real workers (`celery worker --include=...`).

Each writes a record of where and when it ran into the broker's Redis, so a test can check which pool
ran it (hostname, queue) and how long it waited (published -> started).
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery import shared_task
from django.conf import settings

RECORDS_KEY = "probe:records"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(name="probe.record", bind=True)
def record(self, key: str, published_at: float, sleep: float = 0.0) -> None:
    started_at = time.time()
    delivery = self.request.delivery_info or {}
    _redis().rpush(
        RECORDS_KEY,
        json.dumps(
            {
                "key": key,
                "queue": delivery.get("routing_key"),
                "hostname": self.request.hostname,
                "pid": os.getpid(),
                "published_at": published_at,
                "started_at": started_at,
            }
        ),
    )
    if sleep:
        time.sleep(sleep)
