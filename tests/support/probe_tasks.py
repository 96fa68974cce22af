"""Tasks that only tests and benchmarks load into real workers (`celery worker --include=...`).

Each writes a record of where and when it ran into the broker's Redis, so a test can check which pool
ran it (hostname, queue) and how long it waited (published -> started).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from celery import shared_task
from django.conf import settings

T = TypeVar("T")

RECORDS_KEY = "probe:records"
# probe.record's second entry, written when its sleep is over: a job that started but never finished (its
# process killed mid-job) is in RECORDS_KEY only.
FINISHED_KEY = "probe:finished"


def redis_url_for_redis_py(url: str) -> str:
    """kombu spells the embedded broker's unix socket `redis+socket:///path`; redis-py calls it `unix://`."""
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


def _redis() -> redis.Redis:
    return redis.Redis.from_url(redis_url_for_redis_py(settings.REDIS_URL))


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
    _redis().rpush(FINISHED_KEY, json.dumps({"key": key, "pid": os.getpid(), "finished_at": time.time()}))


COUNT_KEY = "probe:count"


@shared_task(name="probe.count")
def count(sleep: float = 0.0) -> None:
    """A job for throughput measurements: sleeps, then counts itself and stamps the first and last finish."""
    if sleep:
        time.sleep(sleep)
    now = time.time()
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(COUNT_KEY)
    pipe.setnx(f"{COUNT_KEY}:first", now)
    pipe.set(f"{COUNT_KEY}:last", now)
    pipe.execute()


EFFECTS_KEY = "probe:effects"


def _when_redis_answers(write: Callable[[], T], *, within: float = 60.0) -> T:
    """The ledger lives in the broker's Redis, which a fault test kills: a ledger write waits for it to
    come back instead of failing the job (a real job's own store is not the broker). Meanwhile the worker
    may cancel the job for its lost connection, and it is redelivered: that is what the test watches."""
    deadline = time.monotonic() + within
    while True:
        try:
            return write()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@shared_task(name="probe.effect", bind=True)
def effect(self, key: str, sleep: float = 0.0) -> None:
    """A job with one side effect, written idempotently (like a rendition's atomic rename): every run is
    recorded, the effect is set once (HSETNX), and a run that finds it already set counts a duplicate."""
    client = _redis()
    started = time.time()
    run = {"key": key, "pid": os.getpid(), "hostname": self.request.hostname, "started": started}
    _when_redis_answers(lambda: client.rpush(RECORDS_KEY, json.dumps(run)))
    if sleep:
        time.sleep(sleep)
    if not _when_redis_answers(lambda: client.hsetnx(EFFECTS_KEY, key, os.getpid())):
        _when_redis_answers(lambda: client.incr(f"{EFFECTS_KEY}:again"))
    finished = json.dumps({**run, "finished": time.time()})
    _when_redis_answers(lambda: client.rpush(f"{EFFECTS_KEY}:finished", finished))


@shared_task(name="probe.poison")
def poison(key: str) -> None:
    """A poison pill: records the attempt, then kills its own pool process, every time."""
    _redis().rpush(RECORDS_KEY, json.dumps({"key": key, "pid": os.getpid()}))
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="probe.worker_killer")
def worker_killer(key: str) -> None:
    """Worse than a poison pill: kills its worker's main process (and then its own), every time."""
    _redis().rpush(RECORDS_KEY, json.dumps({"key": key, "pid": os.getpid()}))
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


FAULT_KEY = "probe:fault"


@shared_task(name="probe.fail")
def fail(key: str, message: str = "boom") -> None:
    raise ValueError(f"{message} ({key})")


@shared_task(name="probe.flaky")
def flaky(key: str) -> None:
    """Fails while the test has a fault switched on (FAULT_KEY set), records like probe.record after."""
    if _redis().get(FAULT_KEY):
        raise RuntimeError(f"fault injected ({key})")
    _redis().rpush(RECORDS_KEY, json.dumps({"key": key, "pid": os.getpid()}))


# A test that needs a purge run to be certainly still running (to race a second run against it, or to
# kill its worker mid-run) slows every deleted report history row in the worker it starts; with a gate
# file named, only while that file exists (the test removes it once it has seen what it needed).
_PURGE_ROW_DELAY = float(os.environ.get("KILN_TEST_PURGE_ROW_DELAY", "0"))
_PURGE_GATE = os.environ.get("KILN_TEST_PURGE_GATE", "")
if _PURGE_ROW_DELAY:
    from django.db.models.signals import pre_delete

    def _slow_purge(sender, **kwargs) -> None:
        if not _PURGE_GATE or os.path.exists(_PURGE_GATE):
            time.sleep(_PURGE_ROW_DELAY)

    pre_delete.connect(_slow_purge, sender="reports.ReportHistoryRecord", weak=False)
