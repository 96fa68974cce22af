"""Purge runs: request them, run them in bounded batches under an expiring per-policy lock. A run that has
more to do than one task's time budget says so in its outcome; the task (purge/tasks.py) carries it on."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from mediastore.store import StorageUnavailable
from outbox import services as outbox
from purge import batches, registry
from purge.models import PurgeBatch, PurgeRun, RetentionPolicy
from purge.signals import purge_run_requested

logger = logging.getLogger(__name__)

# The task that works on a run (purge/tasks.py). Published by its name: the tasks call these services, and
# the services never import the tasks.
PURGE_RUN_TASK = "purge.tasks.purge_run"
# A lock outlives a dead worker by at most this long; a live run extends it with every batch.
LOCK_SECONDS = 120
# A continuation that finds its policy locked by another run waits this long before it tries again.
LOCKED_RETRY_SECONDS = 30


class LockLost(Exception):
    """Another run took the policy's lock (ours expired): stop before removing anything more."""


class RunOutcome(enum.Enum):
    """Where one task's work on a run left it."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # another run of the policy was running when this one was to start
    CONTINUE = "continue"  # not finished: its time budget was spent, or it lost its lock; carry on now
    WAIT = "wait"  # half done, and another run holds the policy's lock: carry on after LOCKED_RETRY_SECONDS
    RETRY = "retry"  # the media store or the database failed: carry on from the cursor after a backoff


def retry_delay(run_id: int) -> int:
    """The backoff before a run's next attempt, after its `failures`-th transient failure in a row."""
    failures = PurgeRun.objects.values_list("failures", flat=True).get(pk=run_id)
    delays = settings.KILN_PURGE_RETRY_DELAYS
    return delays[min(failures, len(delays)) - 1]


def policies_install() -> int:
    """One policy per registered target, with the target's defaults; existing policies are left as edited,
    except that one still named after a label its target has dropped takes the new label (the old name
    would say something the policy no longer does; a name an admin chose is theirs)."""
    created = 0
    for key, target in registry.TARGETS.items():
        policy, was_created = RetentionPolicy.objects.get_or_create(
            target=key, defaults={"name": target.label, "max_age_days": target.default_days}
        )
        created += was_created
        if policy.name in target.former_labels:
            RetentionPolicy.objects.filter(pk=policy.pk, name=policy.name).update(name=target.label)
    return created


def purge_run_request(
    *, policy: RetentionPolicy, dry_run: bool, trigger: str, user=None, slot=None
) -> PurgeRun:
    """Create a queued run and its task in the outbox, in one transaction: the task is published once that
    commits, or by the outbox's sweep if the broker is down then."""
    with transaction.atomic():
        run = PurgeRun.objects.create(
            policy=policy, dry_run=dry_run, trigger=trigger, triggered_by=user, slot=slot
        )
        purge_run_enqueue(run_id=run.pk)
    if trigger != PurgeRun.Trigger.NIGHTLY:
        purge_run_requested.send(sender=PurgeRun, run=run, user=user)
    return run


def purge_run_enqueue(*, run_id: int, countdown: float | None = None) -> None:
    """Through the outbox, in the caller's transaction: published after it commits (a continuation from a
    worker at once), or by the sweep once the broker is back."""
    outbox.task_send(PURGE_RUN_TASK, args=[run_id], countdown=countdown)


def purge_nightly(*, today=None) -> list[int]:
    """Queue tonight's run of every enabled policy, at most once per policy and day.

    The day is the date in TIME_ZONE; the unique (policy, slot) constraint makes a second beat, a restarted
    beat or a redelivered nightly task create nothing.
    """
    slot = today or timezone.localdate()
    queued = []
    for policy in RetentionPolicy.objects.filter(enabled=True):
        try:
            with transaction.atomic():
                run = purge_run_request(
                    policy=policy, dry_run=False, trigger=PurgeRun.Trigger.NIGHTLY, slot=slot
                )
        except IntegrityError:
            logger.info("purge of %s for %s was already queued: not again", policy, slot)
            continue
        queued.append(run.pk)
    return queued


def _lock_acquire(policy_id: int, run_id: int) -> bool:
    now = timezone.now()
    free = Q(locked_by__isnull=True) | Q(locked_until__lt=now) | Q(locked_by=run_id)
    taken = RetentionPolicy.objects.filter(free, pk=policy_id).update(
        locked_by=run_id, locked_until=now + timedelta(seconds=LOCK_SECONDS)
    )
    return taken == 1  # 0: another run holds it and its lock has not expired


def _lock_extend(policy_id: int, run_id: int) -> None:
    until = timezone.now() + timedelta(seconds=LOCK_SECONDS)
    if not RetentionPolicy.objects.filter(pk=policy_id, locked_by=run_id).update(locked_until=until):
        raise LockLost(f"run #{run_id} lost the lock of policy {policy_id}")


def _lock_release(policy_id: int, run_id: int) -> None:
    RetentionPolicy.objects.filter(pk=policy_id, locked_by=run_id).update(locked_by=None, locked_until=None)


def _finish(run_id: int, state: str, error: str = "") -> None:
    PurgeRun.objects.filter(pk=run_id).update(state=state, error=error, finished_at=timezone.now())


def purge_run_execute(*, run_id: int, budget_seconds: float | None = None) -> RunOutcome:
    """Work on one run until it is done or its time budget is spent, and say where that left it.

    Safe to deliver twice: progress (cursor and counts) is committed with each batch, a finished run is
    left alone, and a second delivery running at once deletes nothing the first did not already count. A
    soft time limit raised mid-batch rolls that batch back and propagates: everything committed before it
    stands, and the task carries the run on.
    """
    budget = settings.KILN_PURGE_TASK_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    run = PurgeRun.objects.select_related("policy").get(pk=run_id)
    if run.final:
        return RunOutcome(run.state)  # the final states are outcomes of the same name
    policy = run.policy
    target = registry.TARGETS.get(policy.target)
    if target is None:
        _finish(run_id, PurgeRun.State.FAILED, f"unknown purge target {policy.target!r}: no app registers it")
        return RunOutcome.FAILED

    if not _lock_acquire(policy.pk, run_id):
        holder = RetentionPolicy.objects.values_list("locked_by", flat=True).get(pk=policy.pk)
        if run.state == PurgeRun.State.QUEUED:
            _finish(
                run_id, PurgeRun.State.SKIPPED, f"skipped: run #{holder} of this policy was still running"
            )
            return RunOutcome.SKIPPED
        return RunOutcome.WAIT  # our own run, half done: another holds the lock for now

    try:
        with _relaxed_commit_durability():
            return _work(run, target, budget)
    except SoftTimeLimitExceeded:
        raise  # not a failure: the task carries the run on
    except LockLost as exc:
        # The batch in flight rolled back; everything committed before it stands.
        logger.warning("purge run #%s lost its lock (%s): to be carried on", run_id, exc)
        return RunOutcome.CONTINUE
    except OSError as exc:  # the media store (StorageUnavailable) or the filesystem: transient
        # The batch in flight rolled back (files it deleted from a store are gone and are not listed again);
        # everything committed before it stands, and the cursor says where to carry on.
        return _transient_failure(run_id, policy.pk, exc)
    except Exception as exc:
        _finish(run_id, PurgeRun.State.FAILED, f"{type(exc).__name__}: {exc}")
        _lock_release(policy.pk, run_id)
        raise


def _transient_failure(run_id: int, policy_id: int, exc: BaseException) -> RunOutcome:
    delays = settings.KILN_PURGE_RETRY_DELAYS
    failures = PurgeRun.objects.values_list("failures", flat=True).get(pk=run_id) + 1
    reason = str(exc) if isinstance(exc, StorageUnavailable) else f"{type(exc).__name__}: {exc}"
    if failures <= len(delays):
        PurgeRun.objects.filter(pk=run_id).update(
            failures=failures,
            error=f"attempt {failures} failed, trying again in {delays[failures - 1]} s: {reason}",
        )
        logger.warning("purge run #%s: %s; retrying in %s s", run_id, reason, delays[failures - 1])
        return RunOutcome.RETRY
    PurgeRun.objects.filter(pk=run_id).update(failures=failures)
    _finish(
        run_id,
        PurgeRun.State.FAILED,
        f"{reason} (gave up after {failures} attempts; resume the run to carry on from where it stopped)",
    )
    _lock_release(policy_id, run_id)
    return RunOutcome.FAILED


def purge_run_resume(*, run: PurgeRun) -> bool:
    """Carry a failed run on from its cursor, with its cutoff and its counts so far. False when the run is not
    one that failed after it started (a queued, running, finished or skipped run has nothing to resume)."""
    resumed = PurgeRun.objects.filter(
        pk=run.pk, state=PurgeRun.State.FAILED, started_at__isnull=False
    ).update(state=PurgeRun.State.RUNNING, failures=0, error="", finished_at=None)
    if resumed:
        purge_run_enqueue(run_id=run.pk)  # through the outbox, in this transaction
    return bool(resumed)


def _work(run: PurgeRun, target: registry.Target, budget: float) -> RunOutcome:
    deadline = time.monotonic() + budget
    policy = run.policy
    if run.state == PurgeRun.State.QUEUED:
        run.cutoff = timezone.now() - timedelta(days=policy.max_age_days)
        run.started_at = timezone.now()
        scope = _file_scope_estimate(run) if isinstance(target, registry.FileTarget) else None
        PurgeRun.objects.filter(pk=run.pk).update(
            state=PurgeRun.State.RUNNING,
            cutoff=run.cutoff,
            started_at=run.started_at,
            scope=scope,
            scope_estimated=scope is not None,
        )
    PurgeRun.objects.filter(pk=run.pk).update(tasks=F("tasks") + 1)
    cursor = run.cursor
    lock_checked = time.monotonic()
    gaps = WriterGaps()
    while True:
        batch_started = time.monotonic()
        with transaction.atomic():
            # The lock lasts LOCK_SECONDS; extending it every quarter of that (checking first that it is
            # still ours, as a run that stalled past expiry may have lost it) keeps it, without a statement
            # per batch.
            if batch_started - lock_checked > LOCK_SECONDS / 4:
                _lock_extend(policy.pk, run.pk)
                lock_checked = batch_started
            batch = _next_batch(target, run, cursor)
            _batch_record(run.pk, batch, seconds=time.monotonic() - batch_started)
        cursor = batch.cursor
        gaps.after_batch(time.monotonic() - batch_started)
        if batch.done:
            _finish(run.pk, PurgeRun.State.DONE)
            _lock_release(policy.pk, run.pk)
            return RunOutcome.DONE
        if time.monotonic() > deadline:
            # Keep the lock (it names this run): the continuation takes it again, nobody slips in between.
            return RunOutcome.CONTINUE


def _file_scope_estimate(run: PurgeRun) -> int | None:
    """How many files the run will walk, guessed: a file run cannot count them without walking them all, and
    the policy's last finished run walked about as many. None for a policy's first run."""
    return (
        PurgeRun.objects.filter(policy_id=run.policy_id, state=PurgeRun.State.DONE)
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .values_list("examined", flat=True)
        .first()
    )


def _batch_record(run_id: int, batch: batches.Batch, *, seconds: float) -> None:
    """Save a batch's progress on its run, and list the batch, in the transaction that did its work."""
    counted = 1 if batch.examined else 0
    changes: dict = {
        "cursor": batch.cursor,
        "examined": F("examined") + batch.examined,
        "removed": F("removed") + batch.removed,
        "removed_bytes": F("removed_bytes") + batch.removed_bytes,
        "batches": F("batches") + counted,
        "covered": F("covered") + batch.covered,
        # A batch went through: the store is back, the next failure starts its backoff afresh.
        "failures": 0,
        "error": "",
    }
    if batch.scope is not None:
        changes.update(scope=batch.scope, scope_estimated=False)
    PurgeRun.objects.filter(pk=run_id).update(**changes)
    if not counted:
        return
    # Read after the UPDATE, which holds the run's row until commit: a second delivery of the run working at
    # the same time waits for it and then numbers its batch after this one.
    number = PurgeRun.objects.values_list("batches", flat=True).get(pk=run_id)
    PurgeBatch.objects.create(
        run_id=run_id,
        number=number,
        examined=batch.examined,
        removed=batch.removed,
        removed_bytes=batch.removed_bytes,
        seconds=seconds,
    )


# SQLite has one write lock for the whole database. A purge that began its next batch the instant it committed
# the last would starve every other writer (an upload, a job's status): SQLite's busy handler makes a waiting
# connection sleep and look again, every 100 ms once it has waited a quarter of a second, so only a gap of
# 100 ms is sure to be seen. After each second of work the run leaves the lock free for that long: a writer
# waits about a second at most, for a tenth of the purge's time (measured in bench/purge.py, "other writer").
SQLITE_WORK_SECONDS = 1.0
SQLITE_GAP_SECONDS = 0.1


class WriterGaps:
    """Counts a run's time under the write lock and leaves a gap when a second of it has gone by."""

    def __init__(self) -> None:
        self.worked = 0.0

    def after_batch(self, batch_seconds: float) -> None:
        if connection.vendor != "sqlite":
            return
        self.worked += batch_seconds
        if self.worked >= SQLITE_WORK_SECONDS:
            time.sleep(SQLITE_GAP_SECONDS)
            self.worked = 0.0


@contextmanager
def _relaxed_commit_durability() -> Iterator[None]:
    """On PostgreSQL, let this run's COMMITs return before their WAL reaches the disk.

    Safe here because a batch's deletions and its progress commit together: a crash that loses the last
    commits loses both, and the run simply does those batches again. It saves a WAL flush per batch, a good
    part of a small batch's cost on PostgreSQL. Set for the connection while the run works, then reset.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def _next_batch(target: registry.Target, run: PurgeRun, cursor: str) -> batches.Batch:
    size = run.policy.batch_size
    if isinstance(target, registry.RowTarget):
        return batches.row_batch(target, cutoff=run.cutoff, cursor=cursor, size=size, dry_run=run.dry_run)
    return batches.file_batch(
        target,
        cutoff=run.cutoff,
        cursor=cursor,
        size=size,
        dry_run=run.dry_run,
    )


def purge_plan(policy: RetentionPolicy) -> batches.Batch:
    """What a run of `policy` would remove now, counted batch by batch like a dry run, without a run row."""
    target = registry.TARGETS[policy.target]
    cutoff = timezone.now() - timedelta(days=policy.max_age_days)
    fake = PurgeRun(policy=policy, dry_run=True, cutoff=cutoff)
    examined = removed = removed_bytes = 0
    cursor = ""
    while True:
        batch = _next_batch(target, fake, cursor)
        examined, removed, removed_bytes = (
            examined + batch.examined,
            removed + batch.removed,
            removed_bytes + batch.removed_bytes,
        )
        cursor = batch.cursor
        if batch.done:
            return batches.Batch(
                examined=examined, removed=removed, removed_bytes=removed_bytes, cursor="", done=True
            )
