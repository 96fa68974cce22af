"""Writes: the operator's verbs (retry, forget, flush, clear, pause, resume, scale), each audited; retry and
forget also for a whole issue."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from broker import queues as broker_queues
from jobs import issues, selectors
from jobs.history import RETRY_OF_HEADER, JobEvent, job_events_write, recorder
from jobs.models import AuditEntry, Job, ScheduleSlot
from metrics.store import tally_write
from metrics.tally import Tally
from outbox import services as outbox

CONTROL_TIMEOUT = 1.0
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class OperationRefused(Exception):
    """An operator's request that cannot be carried out as asked; the message says why."""


def duration_parse(text: str) -> timedelta:
    match = _DURATION.match(text or "")
    if not match:
        raise OperationRefused(f"{text!r} is not a duration: use a number and s, m, h or d (90m, 7d)")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise OperationRefused(f"{text!r} is longer than any history") from None


def moment_parse(text: str, *, now: datetime | None = None) -> datetime:
    """A moment as an operator writes it: a duration ago (90m, 2h, 7d) or a date or time in ISO form
    (2026-12-03, 2026-12-03T14:00, 2026-12-03 14:00+01:00), in the site's time zone unless it says."""
    text = (text or "").strip()
    now = now or timezone.now()
    if _DURATION.match(text):
        try:
            return now - duration_parse(text)
        except OverflowError:
            raise OperationRefused(f"{text!r} is longer than any history") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OperationRefused(
            f"{text!r} is neither a duration (90m, 2h, 7d) nor a date or time (2026-12-03, 2026-12-03T14:00)"
        ) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def actor_of(user: AbstractBaseUser | AnonymousUser | None) -> str:
    if user is not None and user.is_authenticated:
        return user.get_username()
    return f"shell:{getpass.getuser()}"


def audit_record(
    *,
    action: str,
    user: Any = None,
    target: str = "",
    count: int = 0,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        actor=actor_of(user),
        action=action,
        target=target[:200],
        count=count,
        details=details or {},
    )


def queue_check(queue: str) -> str:
    names = selectors.queue_names()
    if queue not in names:
        raise OperationRefused(f"unknown queue {queue!r}: Kiln's queues are {', '.join(names)}")
    return queue


@dataclass
class RetryResult:
    retried: list[tuple[int, str]] = field(default_factory=list)  # (old job id, new task id)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (job id, reason)
    # Of the retried, how many wait in the outbox for the broker to come back (the sweep publishes them).
    waiting: int = 0

    @property
    def waiting_note(self) -> str:
        if not self.waiting:
            return ""
        return f" ({self.waiting} wait for the broker: the outbox publishes them once it is back)"


def jobs_retry(
    *, jobs: QuerySet[Job], user: Any = None, description: str = "", limit: int | None = None
) -> RetryResult:
    """Publish each failed job again with its original task, arguments and queue, as a new job linked to
    the old one. A job is claimed by a conditional UPDATE, in one transaction with its new task's outbox
    intent, so two operators never retry it twice and a retry asked while the broker is down is published
    once it is back (outbox/services.py). `limit` bounds one call (a web request must end in time)."""
    result = RetryResult()
    candidates = jobs.filter(state=Job.State.FAILED, retried_at__isnull=True).order_by("id")
    intents = []
    try:
        for job in candidates[:limit] if limit else candidates.iterator():
            if job.args_truncated:
                result.refused.append((job.id, "its arguments were not kept (too large, or not plain JSON)"))
                continue
            with transaction.atomic():
                claimed = Job.objects.filter(id=job.id, retried_at__isnull=True).update(
                    retried_at=timezone.now()
                )
                if not claimed:
                    continue  # another operator got there first
                intent = outbox.task_send(
                    job.task_name,
                    args=job.args,
                    kwargs=job.kwargs,
                    queue=job.queue,
                    headers={RETRY_OF_HEADER: job.id},
                    publish=False,
                )
            intents.append(intent.pk)
            result.retried.append((job.id, intent.task_id))
        # After the claims: with the broker down, one failed attempt for the whole call, not one per job.
        result.waiting = len(intents) - outbox.intents_publish(intent_ids=intents)
    finally:
        recorder.flush()  # the new jobs' records, linked to the old ones, exist when this returns
        if result.retried:
            audit_record(
                action="retry",
                user=user,
                target=description,
                count=len(result.retried),
                details={"jobs": [old for old, _new in result.retried]},
            )
    return result


def jobs_forget(*, jobs: QuerySet[Job], user: Any = None, description: str = "") -> int:
    deleted, _ = jobs.filter(state=Job.State.FAILED).delete()
    audit_record(action="forget", user=user, target=description, count=deleted)
    return deleted


def issue_check(fingerprint: str) -> str:
    """An issue with jobs left in the failed list, or OperationRefused saying what is wrong."""
    if not issues.FINGERPRINT.fullmatch(fingerprint):
        raise OperationRefused(
            f"{fingerprint!r} is not an issue's fingerprint: {issues.DIGEST_LENGTH} hex digits, as `jobs issues` "
            "shows them"
        )
    if not selectors.issue_jobs(fingerprint).exists():
        raise OperationRefused(f"issue {fingerprint} has no job left in the failed list: see `jobs issues`")
    return fingerprint


def issue_retry(*, fingerprint: str, user: Any = None, limit: int | None = None) -> RetryResult:
    """Every job of an issue published again, through jobs_retry (which refuses those whose arguments
    were not kept, and audits)."""
    issue_check(fingerprint)
    return jobs_retry(
        jobs=selectors.issue_jobs(fingerprint), user=user, description=f"issue {fingerprint}", limit=limit
    )


def issue_forget(*, fingerprint: str, user: Any = None) -> int:
    issue_check(fingerprint)
    return jobs_forget(jobs=selectors.issue_jobs(fingerprint), user=user, description=f"issue {fingerprint}")


def jobs_flush(*, older_than: timedelta | None = None, user: Any = None) -> int:
    """Delete failed jobs' records (all, or those that failed longer ago than `older_than`)."""
    doomed = Job.objects.filter(state=Job.State.FAILED)
    if older_than is not None:
        doomed = doomed.filter(finished_at__lt=timezone.now() - older_than)
    deleted, _ = doomed.delete()
    target = f"older than {older_than}" if older_than is not None else "all"
    audit_record(action="flush", user=user, target=target, count=deleted)
    return deleted


def queue_clear(*, queue: str, user: Any = None) -> int:
    """Drop every job waiting in one queue; their records end as `cleared` (created if not written yet)."""
    queue_check(queue)
    dropped = broker_queues.queue_clear(queue)
    now = timezone.now()
    for start in range(0, len(dropped), 500):
        job_events_write(
            [
                JobEvent(
                    task_id=message.task_id,
                    state=Job.State.CLEARED,
                    attempt=message.retries + 1,
                    task_name=message.task_name,
                    queue=queue,
                    finished_at=now,
                    exception_message="cleared from its queue",
                )
                for message in dropped[start : start + 500]
            ]
        )
    audit_record(action="clear", user=user, target=queue, count=len(dropped))
    return len(dropped)


def _broadcast(command: str, arguments: dict[str, Any], destination: list[str] | None = None) -> list[dict]:
    try:
        return (
            current_app.control.broadcast(
                command, arguments=arguments, destination=destination, reply=True, timeout=CONTROL_TIMEOUT
            )
            or []
        )
    except (OSError, OperationalError) as error:
        raise broker_queues.BrokerUnavailable(str(error)) from error


def queue_pause(*, queue: str, user: Any = None) -> list[dict]:
    """The workers stop taking jobs from `queue` (Celery's cancel_consumer); the pause is kept in the broker,
    so a worker that starts or reconnects later stays paused too (broker/worker.py's PausedQueues)."""
    queue_check(queue)
    broker_queues.queue_mark_paused(queue, True)
    replies = _broadcast("cancel_consumer", {"queue": queue})
    audit_record(action="pause", user=user, target=queue, count=len(replies))
    return replies


def queue_resume(*, queue: str, user: Any = None) -> list[dict]:
    """Only workers whose command line names the queue consume it again (`kiln_resume`: Celery's
    add_consumer would make any worker that hears it consume the queue)."""
    queue_check(queue)
    broker_queues.queue_mark_paused(queue, False)
    replies = _broadcast("kiln_resume", {"queue": queue})
    audit_record(action="resume", user=user, target=queue, count=len(replies))
    return replies


def pool_scale(*, pool: str, processes: int, minimum: int | None = None, user: Any = None) -> list[dict]:
    """Grow or shrink a running pool with Celery's own control commands: an autoscaled worker gets a new
    ceiling (and floor) by `autoscale`, a fixed one grows or shrinks to `processes` by `pool_grow` and
    `pool_shrink`. Until the pool restarts: its declared size comes back with it."""
    if processes < 1:
        raise OperationRefused("a pool needs at least 1 process")
    if processes > settings.KILN_POOL_SCALE_MAX:
        # A typo (1000 for 10) would fork a thousand processes on the server.
        raise OperationRefused(
            f"at most {settings.KILN_POOL_SCALE_MAX} processes per pool (KILN_POOL_SCALE_MAX), not {processes}"
        )
    if minimum is not None and not 1 <= minimum <= processes:
        raise OperationRefused("the minimum must be between 1 and the number of processes")
    workers = [worker for worker in selectors.workers_report() if worker.pool == pool]
    if not workers:
        raise OperationRefused(f"no worker of pool {pool!r} answers")
    replies = []
    for worker in workers:
        if worker.autoscale is not None:
            floor = min(worker.autoscale[1], processes) if minimum is None else minimum
            replies += _broadcast("autoscale", {"max": processes, "min": floor}, [worker.hostname])
        elif processes != worker.processes:
            command = "pool_grow" if processes > worker.processes else "pool_shrink"
            replies += _broadcast(command, {"n": abs(processes - worker.processes)}, [worker.hostname])
        else:
            replies.append({worker.hostname: {"ok": f"already {processes} processes"}})
    hostnames = [worker.hostname for worker in workers]
    audit_record(action="scale", user=user, target=pool, count=processes, details={"workers": hostnames})
    return replies


def queues_sample(*, snap: selectors.Snapshot) -> int:
    """This minute's depth, oldest wait, running jobs, workers and pool processes of each queue, added to the
    metrics over time (each span keeps its highest sample). Nothing is written while the broker is
    unreachable: a gap in the charts, not a row of zeros that would read as empty queues."""
    if not snap.broker_ok:
        return 0
    at = datetime.fromtimestamp(snap.taken_at, UTC)
    tally = Tally()
    for queue in snap.queues:
        processes = sum(worker.processes for worker in snap.workers if queue.name in worker.configured_queues)
        for measure, value in (
            ("depth", queue.depth),
            ("oldest_wait", queue.oldest_wait or 0.0),
            ("running", queue.running),
            ("workers", queue.workers),
            ("processes", processes),
        ):
            if value is not None:
                tally.add(measure, at=at, queue=queue.name, task_name="", value=float(value))
    return tally_write(tally)


# --- Beat's slots -----------------------------------------------------------------------------------------
# Claims kept per entry: a beat names at most the slot after the database's last send, so the newest few
# are all a second beat can collide with; the rest go as new ones come (100: a few minutes of a fast entry
# stay readable).
SCHEDULE_SLOTS_KEPT = 100


def schedule_slot_claim(*, name: str, slot: datetime, claimed_by: str) -> bool:
    """Claim one run of a beat entry; False: another beat has claimed (and sent) it."""
    try:
        with transaction.atomic():
            ScheduleSlot.objects.create(name=name, slot=slot, claimed_by=claimed_by)
    except IntegrityError:
        return False
    older = ScheduleSlot.objects.filter(name=name).order_by("-slot").values_list("slot", flat=True)
    cutoff = list(older[SCHEDULE_SLOTS_KEPT : SCHEDULE_SLOTS_KEPT + 1])
    if cutoff:
        ScheduleSlot.objects.filter(name=name, slot__lte=cutoff[0]).delete()
    return True


def schedule_slot_sent(*, name: str, slot: datetime, task_id: str) -> None:
    ScheduleSlot.objects.filter(name=name, slot=slot).update(task_id=task_id)


def schedule_slot_release(*, name: str, slot: datetime) -> None:
    """Give a claimed slot back: its send failed, so beat (this one or another) may send it again."""
    ScheduleSlot.objects.filter(name=name, slot=slot, task_id="").delete()
