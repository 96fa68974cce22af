"""Job history, fed by Celery's signals on both sides and written in bulk, off the task's hot path.

Every process that publishes or runs tasks (web, beat, pool processes) keeps a small buffer of job events
and a thread that writes it every FLUSH_SECONDS in one upsert statement. A failure is written at once, in
the failing process, so a failed job's record is never left in a buffer.

Each event may also be counted (`record(..., counted="started")`): the counts, wait and run times go to the
process's tally of metrics over time (metrics/tally.py), written by the same thread after the events.

Events of one task come from several processes in any order (the web's "queued" may be written after the
worker's "started"), so each carries `progress` = attempt * 10 + the rank of its state, and a record only
moves forward: an older event fills in what is missing (the publish time) and changes nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback as traceback_module
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, close_old_connections, connection, transaction

from jobs import issues
from jobs.arguments import argument_values
from jobs.models import Job
from metrics.store import tally_write
from metrics.tally import Tally

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
# A buffer this full is written by the thread at once; one that cannot be written (database down) keeps
# at most BUFFER_LIMIT jobs and drops the oldest non-failed ones beyond it.
FLUSH_AT = 200
BUFFER_LIMIT = 20_000
# `jobs retry` links the new job to the failed one through this message header.
RETRY_OF_HEADER = "kiln_retry_of"

# Jobs started in this process whose end has not been counted yet: their start, for the run time. A process
# runs one job at a time (prefork); the cap only guards against ends that never come (a hard time limit).
RUNNING_LIMIT = 1000

# The attempt of a final event sent where Celery gives no request context (a failure the worker's main
# process reports for a message it rejected): final whatever came before.
UNKNOWN_ATTEMPT = 100_000

RANKS = {
    Job.State.QUEUED: 0,
    Job.State.RETRYING: 0,
    Job.State.STARTED: 1,
    Job.State.SUCCEEDED: 3,
    Job.State.FAILED: 3,
    Job.State.CLEARED: 3,
    Job.State.REVOKED: 3,
}


@dataclass
class JobEvent:
    task_id: str
    state: str
    attempt: int
    task_name: str = ""
    queue: str = ""
    args: Any = field(default_factory=list)
    kwargs: Any = field(default_factory=dict)
    args_truncated: bool = False
    worker: str = ""
    published_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exception_type: str = ""
    exception_message: str = ""
    traceback: str = ""
    retry_of_id: int | None = None

    @property
    def progress(self) -> int:
        return self.attempt * 10 + RANKS[self.state]

    def merge(self, later: JobEvent) -> JobEvent:
        """Two events of one task in the same buffer: the one further along wins, the other fills gaps."""
        newer, older = (later, self) if later.progress >= self.progress else (self, later)
        for name in ("task_name", "queue", "worker", "published_at", "started_at", "retry_of_id"):
            if not getattr(newer, name):
                setattr(newer, name, getattr(older, name))
        return newer


def now() -> datetime:
    return datetime.now(UTC)


def capped_arguments(args: Any, kwargs: Any) -> tuple[Any, Any, bool]:
    """Arguments as JSON values, or empty ones flagged as truncated (not retryable from the record) when
    they exceed the size cap or are not plain JSON (NaN, a NUL character, an object JSON cannot hold)."""
    try:
        text = json.dumps([list(args or []), dict(kwargs or {})], allow_nan=False)
    except (TypeError, ValueError):
        return [], {}, True
    if len(text) > settings.KILN_JOB_ARGS_MAX_BYTES or "\\u0000" in text:
        return [], {}, True
    plain_args, plain_kwargs = json.loads(text)
    return plain_args, plain_kwargs, False


def exception_fields(exception: BaseException | None, einfo: Any = None) -> dict[str, str]:
    if exception is None:
        return {}
    if einfo is not None and getattr(einfo, "traceback", None):
        text = str(einfo.traceback)
    else:
        text = "".join(traceback_module.format_exception(exception))
    return {
        "exception_type": type(exception).__name__,
        # Both columns are text; a NUL byte is refused by PostgreSQL.
        "exception_message": str(exception).replace("\x00", "")[:4000],
        "traceback": text.replace("\x00", "")[-20000:],
    }


class Recorder:
    """The buffer and its writer thread for one process (a fork starts with a fresh one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.buffer: dict[str, JobEvent] = {}
        self.tally = Tally()
        self.running: dict[str, datetime] = {}
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()
        self.warned_at = -3600.0

    def record(self, event: JobEvent, *, urgent: bool = False, counted: str = "") -> None:
        """Buffer `event`; `counted` names the counter it adds to (metrics.tally.COUNTERS), if any."""
        self._after_fork()
        with self.lock:
            known = self.buffer.get(event.task_id)
            self.buffer[event.task_id] = known.merge(event) if known else event
            if counted:
                self._count_locked(counted, event)
            full = len(self.buffer) >= FLUSH_AT
        if urgent:
            self.flush()
            return
        self._ensure_thread()
        if full:
            self.wake.set()

    def count(self, counted: str, event: JobEvent) -> None:
        """Count an event whose record is written elsewhere (a parked job, written at once by recovery)."""
        self._after_fork()
        with self.lock:
            self._count_locked(counted, event)
        self._ensure_thread()

    def _count_locked(self, counted: str, event: JobEvent) -> None:
        at = now()
        wait = run = None
        if counted == "sent":
            at = event.published_at or at
        elif counted == "started":
            at = event.started_at or at
            if event.published_at is not None:
                wait = (at - event.published_at).total_seconds()
            if len(self.running) >= RUNNING_LIMIT:
                self.running.clear()
            self.running[event.task_id] = at
        elif counted in ("succeeded", "failed", "retried"):
            at = event.finished_at or at
            began = self.running.pop(event.task_id, None)
            if began is not None:
                run = (at - began).total_seconds()
        self.tally.job_counted(
            counted,
            at=at,
            queue=event.queue,
            task_name=event.task_name,
            # The publisher's host for a publish (a web or beat host), the worker's node name for the rest.
            hostname=event.worker or HOSTNAME,
            exception=event.exception_type,
            wait=wait,
            run=run,
        )

    def flush(self) -> int:
        """Write everything buffered; on a database error keep it for the next attempt.

        The write lock is held from taking the buffer to the commit, so a flush at exit waits for the
        writer thread's write in progress instead of finding an empty buffer while that write dies with
        the process.
        """
        self._after_fork()
        with self.write_lock:
            with self.lock:
                events, self.buffer = list(self.buffer.values()), {}
                tally = self.tally.take()
            if not events and not tally:
                return 0
            try:
                # The worker's main process writes only now and then (a failure after a hard time limit):
                # its connection may have been closed by the server since.
                close_old_connections()
                written = job_events_write(events) if events else 0
                # After the events: if this fails, both are kept, and writing the events again changes
                # nothing (a record only moves forward) while the tally is added exactly once.
                tally_write(tally)
                return written
            except Exception:
                # Once a minute at most: a database that stays down must not flood the worker's log.
                if time.monotonic() - self.warned_at > 60:
                    self.warned_at = time.monotonic()
                    logger.warning(
                        "job history: could not write %d events, keeping them", len(events), exc_info=True
                    )
                connection.close()
                with self.lock:
                    for event in events:
                        known = self.buffer.get(event.task_id)
                        self.buffer[event.task_id] = event.merge(known) if known else event
                    self.tally.merge(tally)
                    self._trim_locked()
                self._ensure_thread()  # an urgent write that failed is tried again by the thread
                return 0

    def _trim_locked(self) -> None:
        excess = len(self.buffer) - BUFFER_LIMIT
        if excess <= 0:
            return
        dropped = [key for key, event in self.buffer.items() if event.state != Job.State.FAILED][:excess]
        for key in dropped:
            del self.buffer[key]
        logger.error("job history: buffer full, dropped %d records", len(dropped))

    def _after_fork(self) -> None:
        if self.pid != os.getpid():
            # A pool process forked from a parent: the parent's buffer and thread are not ours.
            self.lock = threading.Lock()
            self.write_lock = threading.Lock()
            self.buffer = {}
            self.tally = Tally()
            self.running = {}
            self.wake = threading.Event()
            self.thread = None
            self.pid = os.getpid()

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.thread = threading.Thread(target=self._run, name="kiln-job-history", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # never let the writer thread die
                logger.exception("job history: writer failed")
                time.sleep(FLUSH_SECONDS)


recorder = Recorder()
HOSTNAME = socket.gethostname()


_UPSERT = """
INSERT INTO jobs_job (task_id, task_name, queue, args, kwargs, argument_values, args_truncated, state,
    progress, attempts, worker, published_at, started_at, finished_at, exception_type, exception_message,
    traceback, fingerprint, retry_of_id, retried_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    (SELECT id FROM jobs_job WHERE id = %s), NULL)
ON CONFLICT (task_id) DO UPDATE SET
    task_name = CASE WHEN jobs_job.task_name = '' THEN excluded.task_name ELSE jobs_job.task_name END,
    queue = CASE WHEN jobs_job.queue = '' THEN excluded.queue ELSE jobs_job.queue END,
    state = CASE WHEN excluded.progress >= jobs_job.progress THEN excluded.state ELSE jobs_job.state END,
    attempts = CASE WHEN excluded.attempts > jobs_job.attempts THEN excluded.attempts ELSE jobs_job.attempts END,
    worker = CASE WHEN excluded.worker <> '' AND (jobs_job.worker = '' OR excluded.progress >= jobs_job.progress)
        THEN excluded.worker ELSE jobs_job.worker END,
    published_at = CASE WHEN excluded.published_at IS NOT NULL
        AND (jobs_job.published_at IS NULL OR excluded.progress >= jobs_job.progress)
        THEN excluded.published_at ELSE jobs_job.published_at END,
    started_at = CASE WHEN excluded.started_at IS NOT NULL
        AND (jobs_job.started_at IS NULL OR excluded.progress >= jobs_job.progress)
        THEN excluded.started_at ELSE jobs_job.started_at END,
    finished_at = CASE WHEN excluded.progress >= jobs_job.progress
        THEN excluded.finished_at ELSE jobs_job.finished_at END,
    exception_type = CASE WHEN excluded.progress >= jobs_job.progress AND excluded.state <> 'started'
        AND excluded.state <> 'queued' THEN excluded.exception_type ELSE jobs_job.exception_type END,
    exception_message = CASE WHEN excluded.progress >= jobs_job.progress AND excluded.state <> 'started'
        AND excluded.state <> 'queued' THEN excluded.exception_message ELSE jobs_job.exception_message END,
    traceback = CASE WHEN excluded.progress >= jobs_job.progress AND excluded.state <> 'started'
        AND excluded.state <> 'queued' THEN excluded.traceback ELSE jobs_job.traceback END,
    fingerprint = CASE WHEN excluded.progress >= jobs_job.progress AND excluded.state <> 'started'
        AND excluded.state <> 'queued' THEN excluded.fingerprint ELSE jobs_job.fingerprint END,
    retry_of_id = COALESCE(jobs_job.retry_of_id, excluded.retry_of_id),
    progress = CASE WHEN excluded.progress > jobs_job.progress THEN excluded.progress ELSE jobs_job.progress END
"""


def _row(event: JobEvent) -> tuple:
    ops = connection.ops

    def when(value: datetime | None) -> Any:
        return ops.adapt_datetimefield_value(value) if value is not None else None

    final_unknown = event.attempt >= UNKNOWN_ATTEMPT
    task_name, exception_type = event.task_name[:200], event.exception_type[:200]
    return (
        event.task_id[:64],
        task_name,
        event.queue[:100],
        ops.adapt_json_value(event.args, None),
        ops.adapt_json_value(event.kwargs, None),
        # Like args, kept from the first record written: the upsert never updates them.
        argument_values(event.args, event.kwargs),
        event.args_truncated,
        event.state,
        event.progress,
        0 if final_unknown or event.state in (Job.State.QUEUED, Job.State.RETRYING) else event.attempt,
        event.worker[:200],
        when(event.published_at),
        when(event.started_at),
        when(event.finished_at),
        exception_type,
        event.exception_message,
        event.traceback,
        # From the capped values the row keeps: computed again from the row (as a migration does), it is
        # the same.
        issues.fingerprint(task_name, exception_type, event.exception_message, event.traceback)
        if event.state == Job.State.FAILED
        else "",
        event.retry_of_id,
    )


def job_events_write(events: list[JobEvent]) -> int:
    """One upsert for the lot, in one transaction (SQLite and PostgreSQL both have ON CONFLICT).

    A row the database refuses (it should not happen: arguments are cleaned, lengths capped) must not
    hold back every event after it: the batch is then written row by row and the refused rows dropped.
    """
    rows = [_row(event) for event in sorted(events, key=lambda event: event.task_id)]  # one lock order
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(_UPSERT, rows)
        return len(rows)
    except (DataError, IntegrityError):
        pass
    written = 0
    for row in rows:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_UPSERT, row)
            written += 1
        except (DataError, IntegrityError):
            logger.exception("job history: the database refused the record of task %s; dropped", row[0])
    return written
