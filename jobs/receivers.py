"""Receivers: Celery's signals turned into job events for the history (jobs/history.py), the broker layer's
parked jobs recorded as failed, and other apps' operations written to the audit log. Connected by
JobsConfig.ready()."""

from __future__ import annotations

import atexit
from datetime import UTC, datetime
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import signals

from broker.queues import PUBLISHED_HEADER
from broker.signals import ParkedJob, job_parked
from jobs.history import (
    HOSTNAME,
    RETRY_OF_HEADER,
    UNKNOWN_ATTEMPT,
    JobEvent,
    capped_arguments,
    exception_fields,
    job_events_write,
    now,
    recorder,
)
from jobs.models import Job
from jobs.services import audit_record
from metrics.store import tally_write
from metrics.tally import Tally


def record_published(
    sender: str | None = None,
    body: Any = None,
    routing_key: str = "",
    headers: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    headers = headers or {}
    task_id = headers.get("id")
    if not task_id:
        return  # task protocol 1 or not a task message: nothing Kiln publishes
    args, task_kwargs = (body[0], body[1]) if isinstance(body, list | tuple) and len(body) >= 2 else ([], {})
    args, task_kwargs, truncated = capped_arguments(args, task_kwargs)
    retries = int(headers.get("retries") or 0)
    published = headers.get(PUBLISHED_HEADER)
    recorder.record(
        JobEvent(
            task_id=task_id,
            state=Job.State.RETRYING if retries else Job.State.QUEUED,
            attempt=retries + 1,
            task_name=headers.get("task") or sender or "",
            queue=routing_key or "",
            args=args,
            kwargs=task_kwargs,
            args_truncated=truncated,
            published_at=datetime.fromtimestamp(published, UTC) if published else now(),
            retry_of_id=headers.get(RETRY_OF_HEADER),
        ),
        counted="sent",
    )


def _request_event(task: Any, state: str, attempt_offset: int = 1, **fields: Any) -> JobEvent:
    request = task.request
    delivery = request.delivery_info or {}
    args, task_kwargs, truncated = capped_arguments(request.args, request.kwargs)
    # Message headers become request attributes: the publish time travels with the message, so the
    # worker's event carries it even if the publisher's own record was never written.
    published = getattr(request, PUBLISHED_HEADER, None)
    return JobEvent(
        task_id=request.id,
        state=state,
        attempt=(request.retries or 0) + attempt_offset,
        task_name=task.name,
        queue=delivery.get("routing_key") or "",
        args=args,
        kwargs=task_kwargs,
        args_truncated=truncated,
        worker=request.hostname or "",
        published_at=datetime.fromtimestamp(published, UTC) if isinstance(published, int | float) else None,
        **fields,
    )


def record_started(sender: Any = None, task: Any = None, **kwargs: Any) -> None:
    task = task or sender
    if task is None or task.request.id is None or task.request.is_eager:
        return
    event = _request_event(task, Job.State.STARTED, started_at=now())
    # celery-exporter's task-received is counted here, in the pool process that took the job, not in the
    # worker's main process when the message arrives: a writer thread in the main process made its pool
    # processes lose their last records at a warm shutdown (bench/overhead.py's history check: 7 % of
    # 3,000 jobs left `queued`). Kiln's workers prefetch one job per process, so the two moments are close.
    recorder.count("received", event)
    recorder.record(event, counted="started")


def record_succeeded(sender: Any = None, **kwargs: Any) -> None:
    if sender is None or sender.request.id is None or sender.request.is_eager:
        return
    recorder.record(_request_event(sender, Job.State.SUCCEEDED, finished_at=now()), counted="succeeded")


def record_retrying(sender: Any = None, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    if sender is None or request is None or request.is_eager:
        return
    exception = getattr(reason, "exc", None) or reason
    # The next attempt's event: it merges with the republished message's "retrying".
    event = _request_event(sender, Job.State.RETRYING, attempt_offset=2)
    for name, value in exception_fields(exception if isinstance(exception, BaseException) else None).items():
        setattr(event, name, value)
    recorder.record(event, counted="retried")


def record_failed(
    sender: Any = None, task_id: str | None = None, exception: Any = None, einfo: Any = None, **kwargs: Any
) -> None:
    if sender is None or task_id is None or sender.request.is_eager:
        return
    fields = exception_fields(exception, einfo)
    if sender.request.id == task_id:
        event = _request_event(sender, Job.State.FAILED, finished_at=now(), **fields)
    else:
        # Sent by the worker's main process without the job's request (a message rejected for good): the
        # attempt is unknown, and a failure is final whatever came before.
        event = JobEvent(
            task_id=task_id,
            state=Job.State.FAILED,
            attempt=UNKNOWN_ATTEMPT,
            task_name=sender.name,
            finished_at=now(),
            **fields,
        )
    if isinstance(exception, WorkerLostError):
        # Billiard's message names the signal; the operator needs to know it was not a one-off.
        event.exception_message = (
            f"the worker was lost on attempt {event.attempt}, the last one allowed: {event.exception_message}"
        )
    # Written now, in this process: a failed job's record must not wait in a buffer.
    recorder.record(event, urgent=True, counted="failed")


def record_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **kwargs: Any
) -> None:
    if request is None or not getattr(request, "id", None):
        return
    reason = "expired before it ran" if expired else ("terminated" if terminated else "revoked")
    recorder.record(
        JobEvent(
            task_id=request.id,
            state=Job.State.REVOKED,
            attempt=UNKNOWN_ATTEMPT,
            task_name=getattr(request, "task_name", "") or getattr(request, "name", "") or "",
            queue=(getattr(request, "delivery_info", None) or {}).get("routing_key") or "",
            finished_at=now(),
            exception_message=reason,
        ),
        counted="revoked",
    )


def record_refused(sender: Any = None, message: Any = None, exc: Any = None, **kwargs: Any) -> None:
    """A message the worker cannot run (an unknown task name, a malformed message): it never will."""
    headers = getattr(message, "headers", None) or {}
    task_id = headers.get("id")
    if not task_id:
        return
    recorder.record(
        JobEvent(
            task_id=task_id,
            state=Job.State.REVOKED,
            attempt=UNKNOWN_ATTEMPT,
            task_name=headers.get("task") or "",
            queue=(getattr(message, "delivery_info", None) or {}).get("routing_key") or "",
            finished_at=now(),
            exception_type=type(exc).__name__ if exc is not None else "",
            exception_message=f"refused by the worker: {exc}" if exc is not None else "refused by the worker",
        ),
        urgent=True,
        counted="rejected",
    )


def flush_before_exit(**kwargs: Any) -> None:
    recorder.flush()


def record_parked(sender: Any = None, job: ParkedJob | None = None, **kwargs: Any) -> bool:
    """A job whose worker died holding it too many times, taken out of Redis by recovery: its record says
    so, written now (recovery puts the job back instead if this raises)."""
    assert job is not None
    if job.args is None:
        args, task_kwargs, truncated = [], {}, True
    else:
        args, task_kwargs, truncated = capped_arguments(job.args, job.kwargs)
    event = JobEvent(
        task_id=job.task_id,
        state=Job.State.FAILED,
        attempt=UNKNOWN_ATTEMPT,
        task_name=job.task_name,
        queue=job.queue,
        args=args,
        kwargs=task_kwargs,
        args_truncated=truncated,
        finished_at=now(),
        exception_type="WorkerLostError",
        exception_message=f"parked: the worker holding it died {job.deaths} times",
    )
    job_events_write([event])
    # Counted now too, in this process: recovery runs only now and then, and a writer thread started for one
    # count would keep a database connection open for nothing.
    counted = Tally()
    counted.job_counted(
        "failed", at=event.finished_at or now(), queue=job.queue, task_name=job.task_name,
        hostname=HOSTNAME, exception=event.exception_type,
    )  # fmt: skip
    tally_write(counted)
    return True


def purge_run_audit(sender: Any = None, run: Any = None, user: Any = None, **kwargs: Any) -> None:
    """A person asked for a purge run (purge/signals.py): the audit log says who, and which policy."""
    audit_record(
        action="purge-dry-run" if run.dry_run else "purge-run",
        user=user,
        target=run.policy.name,
        count=1,
        details={"run": run.pk, "trigger": run.trigger},
    )


RECEIVERS = (
    (signals.after_task_publish, record_published),
    (signals.task_prerun, record_started),
    (signals.task_success, record_succeeded),
    (signals.task_retry, record_retrying),
    (signals.task_failure, record_failed),
    (signals.task_revoked, record_revoked),
    (signals.task_unknown, record_refused),
    (signals.task_rejected, record_refused),
    (signals.worker_process_shutdown, flush_before_exit),
    (signals.worker_shutdown, flush_before_exit),
)


def parked_connect() -> None:
    # Always, history on or off: recovery parks a job only once it is recorded.
    job_parked.connect(record_parked, weak=False)


def connect() -> None:
    for signal, receiver in RECEIVERS:
        signal.connect(receiver, weak=False)
    # The web and beat processes: whatever the thread has not written yet.
    atexit.register(recorder.flush)


def disconnect() -> None:
    for signal, receiver in RECEIVERS:
        signal.disconnect(receiver)
    atexit.unregister(recorder.flush)
