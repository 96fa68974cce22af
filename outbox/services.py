"""The outbox: every task Kiln publishes is first an `Intent` row, written in the transaction of the change that
asks for it, and published once that transaction commits. A publish that fails (the broker is down) leaves
the row for the sweep, which publishes it once the broker is back: an admin's purge, a retry, beat's slot
and a purge run's continuation survive an outage like an upload does.

No task runs twice because of it. Every copy of an intent carries the intent's one task id and its copy
number (COPY_HEADER); the worker runs only the copy it claims first (`intent_run_claim`, called by
outbox/worker.py before the task starts), so a publish that timed out after reaching Redis and the sweep's
second copy make one run. Redeliveries of the copy that ran (a lost worker, the task's own retries) carry
the same copy number and run as before: at least once stays at least once.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError

from outbox.models import Intent

logger = logging.getLogger(__name__)

# The copy number every published message of an intent carries; Celery hands it to the task as a request
# attribute, and keeps it on the task's own retries.
COPY_HEADER = "kiln_outbox_copy"
SWEEP_TASK = "outbox.tasks.sweep"
# What a publish to an unreachable broker raises (kombu wraps most; a refused socket can surface as OSError).
PUBLISH_ERRORS = (OperationalError, OSError)


class Published(enum.Enum):
    SENT = "sent"
    FAILED = "failed"  # the broker could not be reached: the intent waits for the sweep
    TAKEN = "taken"  # another process claimed this copy first, or the intent is published already


def task_send(
    task_name: str,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str = "",
    headers: Mapping[str, Any] | None = None,
    countdown: float | None = None,
    eta: datetime | None = None,
    expires: datetime | None = None,
    task_id: str | None = None,
    key: str = "",
    publish: bool = True,
) -> Intent:
    """Write the intent in the caller's transaction and publish it once that commits (at once outside a
    transaction). `publish=False` leaves the publishing to a caller that sends many (`intents_publish`)."""
    if countdown is not None:
        eta = timezone.now() + timedelta(seconds=countdown)
    intent = Intent.objects.create(
        task_id=task_id or str(uuid.uuid4()),
        task_name=task_name,
        args=list(args),
        kwargs=dict(kwargs or {}),
        queue=queue or "",
        headers=dict(headers or {}),
        eta=eta,
        expires=expires,
        key=key,
    )
    if publish:
        # robust: a failed publish never turns the caller's committed change into an error.
        transaction.on_commit(lambda: intent_publish(intent_id=intent.pk), robust=True)
    return intent


def intent_publish(*, intent_id: int, seen_attempts: int | None = None) -> Published:
    """Claim the intent's next copy and publish it, without retries (a request never waits on a dead
    broker). The claim is a conditional UPDATE of `attempts` from the value read, the same on SQLite and
    PostgreSQL and holding no lock while the publish goes over the network: of two processes that read the
    same value, one publishes and the other finds it TAKEN."""
    if seen_attempts is None:
        seen_attempts = Intent.objects.filter(pk=intent_id).values_list("attempts", flat=True).first()
        if seen_attempts is None:
            return Published.TAKEN  # rolled back or purged
    copy = seen_attempts + 1
    claimed = Intent.objects.filter(
        pk=intent_id, attempts=seen_attempts, published_at__isnull=True, ran_copy__isnull=True
    ).update(attempts=copy, attempted_at=timezone.now())
    if not claimed:
        return Published.TAKEN
    intent = Intent.objects.get(pk=intent_id)
    options: dict[str, Any] = {
        "task_id": intent.task_id,
        "headers": {**intent.headers, COPY_HEADER: copy},
        # Kiln's tasks record their outcome in the database; send_task would otherwise subscribe to the
        # result (CELERY_TASK_IGNORE_RESULT does not reach it).
        "ignore_result": True,
        "retry": False,
    }
    if intent.queue:
        options["queue"] = intent.queue
    if intent.eta is not None:
        options["eta"] = intent.eta
    if intent.expires is not None:
        options["expires"] = intent.expires
    try:
        current_app.send_task(intent.task_name, args=intent.args, kwargs=intent.kwargs, **options)
    except PUBLISH_ERRORS as error:
        # The copy may still have reached Redis (a reply lost to a timeout): the sweep sends the next copy
        # only after the grace, and the worker runs whichever copy it claims first.
        logger.warning("%s stays in the outbox: the broker is unreachable (%s)", intent, error)
        Intent.objects.filter(pk=intent_id, published_at__isnull=True).update(error=str(error)[:2000])
        return Published.FAILED
    Intent.objects.filter(pk=intent_id, published_at__isnull=True).update(
        published_at=timezone.now(), error=""
    )
    return Published.SENT


def intents_publish(*, intent_ids: Iterable[int]) -> int:
    """Publish several intents, stopping at the first broker failure: while Redis is down a retry of many
    jobs pays for one failed connection attempt, not one each (the sweep sends the rest)."""
    sent = 0
    for intent_id in intent_ids:
        outcome = intent_publish(intent_id=intent_id)
        if outcome is Published.FAILED:
            break
        sent += outcome is Published.SENT
    return sent


def intents_due(*, now: datetime | None = None, grace: float | None = None) -> Any:
    """Unpublished intents the sweep may send: older than the grace (KILN_OUTBOX_GRACE_SECONDS), with no
    attempt in it (one in flight, or one that failed but maybe reached Redis, is left to finish), and no copy
    started by a worker."""
    now = now or timezone.now()
    grace = settings.KILN_OUTBOX_GRACE_SECONDS if grace is None else grace
    cutoff = now - timedelta(seconds=grace)
    return Intent.objects.filter(
        published_at__isnull=True, ran_copy__isnull=True, created_at__lt=cutoff
    ).filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=cutoff))


def intents_sweep(*, limit: int = 500, now: datetime | None = None, grace: float | None = None) -> int:
    """Publish up to `limit` due intents, oldest first; stop at the first broker failure. Returns how many
    were sent. Any number of sweeps may run at once: each copy is claimed by one (`intent_publish`)."""
    due = intents_due(now=now, grace=grace).order_by("id").values_list("pk", "attempts")[:limit]
    sent = 0
    for intent_id, attempts in list(due):
        outcome = intent_publish(intent_id=intent_id, seen_attempts=attempts)
        if outcome is Published.FAILED:
            break  # every later one would fail the same way
        sent += outcome is Published.SENT
    return sent


def beat_send(
    *,
    entry_name: str,
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
) -> Intent:
    """Beat's send of one slot of `entry_name`, through the outbox. An entry has at most one unpublished
    intent: while the broker is down, the slots that follow find the first one waiting and publish it
    (once its last attempt is older than the grace) instead of piling up a run per missed slot, as beat
    itself runs a late entry once, not once per slot missed. This also keeps the sweep's own entry moving:
    beat publishes it when the broker returns, and the sweep then publishes the rest."""
    key = f"beat:{entry_name}"
    waiting = (
        Intent.objects.filter(key=key, published_at__isnull=True, ran_copy__isnull=True)
        .order_by("id")
        .first()
    )
    if waiting is not None:
        cutoff = timezone.now() - timedelta(seconds=settings.KILN_OUTBOX_GRACE_SECONDS)
        if waiting.attempted_at is None or waiting.attempted_at < cutoff:
            intent_publish(intent_id=waiting.pk, seen_attempts=waiting.attempts)
        return waiting
    expires = options.get("expires")
    if isinstance(expires, int | float):
        expires = timezone.now() + timedelta(seconds=expires)
    return task_send(
        task_name,
        args=args or (),
        kwargs=kwargs or {},
        queue=options.get("queue") or "",
        # Celery marks beat's messages so (Scheduler.apply_async); kept for whoever reads them.
        headers={**(options.get("headers") or {}), "celery_beat_task": True},
        expires=expires if isinstance(expires, datetime) else None,
        key=key,
    )


def intent_run_claim(*, task_id: str, copy: int) -> bool:
    """In the worker, before a published copy runs: True when this copy may run (the first copy of the
    intent a worker started, or a redelivery of it), False for another copy of an intent already run.
    The claim also marks the intent published (its copy reached a worker, whatever its publisher saw)."""
    claimed = (
        Intent.objects.filter(task_id=task_id)
        .filter(Q(ran_copy__isnull=True) | Q(ran_copy=copy))
        .update(
            ran_copy=copy,
            published_at=Coalesce(F("published_at"), Value(timezone.now(), output_field=DateTimeField())),
        )
    )
    if claimed:
        return True
    # No row at all: the intent was purged long after it was published (retention): nothing to compare
    # with, so the copy runs, as any message without the header would.
    return not Intent.objects.filter(task_id=task_id).update(duplicates=F("duplicates") + 1)
