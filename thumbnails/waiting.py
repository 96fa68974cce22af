"""Why a pending image is still waiting, in words for the person who uploaded it.

"processing…" on a tile while nothing runs is a lie: the queue may be paused, no worker may be running for
it, or the broker may be down (the upload is then committed and swept once the broker is back). The queue's
conditions come from the broker in one round trip, shared by every caller of a process for a moment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from broker.queues import QueueConditions, queue_conditions
from config.queues import queue_for, spec_of
from thumbnails.models import Image
from thumbnails.services import RENDITION_TASK


@dataclass(frozen=True)
class Wait:
    reason: str  # a stable code: queued, processing, paused, no_worker, broker_unreachable
    text: str  # what the tile says


QUEUED = Wait("queued", "queued")
PROCESSING = Wait("processing", "processing…")
PAUSED = Wait("paused", "waiting: processing is paused by an operator")
NO_WORKER = Wait("no_worker", "waiting: no worker is running to process it")
BROKER_UNREACHABLE = Wait(
    "broker_unreachable", "waiting: the job queue is unreachable; it goes ahead once it is back"
)


def thumbnail_queue() -> str:
    return queue_for(RENDITION_TASK, settings.KILN_QUEUES, settings.CELERY_TASK_DEFAULT_QUEUE)


def image_wait(image: Image, conditions: QueueConditions, queue: str, *, now: datetime) -> Wait | None:
    """None unless the image is pending. A worker that began the image within its time limit is
    processing it (a job in flight finishes even when its queue is paused meanwhile)."""
    if image.status != Image.Status.PENDING:
        return None
    if not conditions.broker_ok:
        return BROKER_UNREACHABLE
    spec = spec_of(queue, settings.KILN_QUEUES)
    time_limit = timedelta(seconds=spec.time_limit if spec else 300)
    started = image.started_at is not None and now - image.started_at < time_limit
    without_workers = conditions.without_workers or frozenset()
    if started and queue not in without_workers:
        return PROCESSING
    if queue in conditions.paused:
        return PAUSED
    if queue in without_workers:
        return NO_WORKER
    return QUEUED


_cached: dict[str, tuple[float, QueueConditions]] = {}


def conditions_cached(queue: str, max_age: float = 2.0) -> QueueConditions:
    """Every open report page polls: one broker round trip per process every `max_age` seconds, not one per
    request."""
    taken = _cached.get(queue)
    if taken is None or time.monotonic() - taken[0] > max_age:
        leases = settings.KILN_WORKER_DEAD_AFTER_SECONDS > 0
        taken = _cached[queue] = (time.monotonic(), queue_conditions([queue], leases=leases))
    return taken[1]


def images_wait(images: list[Image]) -> dict[int, Wait]:
    """The wait of each pending image among `images`; the broker is asked only when one is pending."""
    pending = [image for image in images if image.status == Image.Status.PENDING]
    if not pending:
        return {}
    queue = thumbnail_queue()
    conditions, now = conditions_cached(queue), timezone.now()
    return {image.pk: wait for image in pending if (wait := image_wait(image, conditions, queue, now=now))}
