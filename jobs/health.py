"""Health rules: pure functions from a queue's state and the thresholds to `healthy`/`warning`/`critical`.

`QueueState` is a queue at a moment, as jobs.selectors reads it from the broker, the workers and the job
history; `Thresholds` is the one object health, the alert mails, the dashboard and the generated
Prometheus rules all read (waits per queue from KILN_QUEUES, the rest from KILN_HEALTH_*).

Levels follow the seeds' health indicators (queue size 1000/5000, failed jobs 10/50, jobs waiting too
long); each queue also gets a worker status after the seeds' dashboards:
  processing  jobs of this queue are running
  idle        nothing waits, workers are consuming
  pending     jobs just arrived, none started yet (shorter than the stalled threshold)
  stalled     jobs wait longer than the stalled threshold and nothing of this queue runs
  paused      an operator paused the queue (`jobs pause`)
  unknown     the broker cannot be read

Beat's entries are judged in jobs/schedules.py: a late one makes the system `warning`, never `critical`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.schedules import ScheduleState

HEALTHY, WARNING, CRITICAL = "healthy", "warning", "critical"
LEVELS = (HEALTHY, WARNING, CRITICAL)


@dataclass(frozen=True)
class Thresholds:
    waits: dict[str, int]  # per queue: an oldest wait above this is `warning`, and mailed
    waits_critical: dict[str, int]  # per queue: above this, `critical`
    depth_warning: int = 1000
    depth_critical: int = 5000
    failed_warning: int = 10
    failed_critical: int = 50
    stalled_seconds: int = 30
    # Tasks written to the outbox and still unpublished after this long: a `warning` (outbox/).
    outbox_seconds: int = 300

    @classmethod
    def from_settings(cls) -> Thresholds:
        from django.conf import settings

        return cls(
            waits={queue.name: queue.wait_warning for queue in settings.KILN_QUEUES},
            waits_critical={queue.name: queue.wait_critical for queue in settings.KILN_QUEUES},
            depth_warning=settings.KILN_HEALTH_DEPTH_WARNING,
            depth_critical=settings.KILN_HEALTH_DEPTH_CRITICAL,
            failed_warning=settings.KILN_HEALTH_FAILED_WARNING,
            failed_critical=settings.KILN_HEALTH_FAILED_CRITICAL,
            stalled_seconds=settings.KILN_HEALTH_STALLED_SECONDS,
            outbox_seconds=settings.KILN_OUTBOX_WARN_SECONDS,
        )

    def wait_exceeded(self, queue: QueueState) -> tuple[str, int] | None:
        """(level, threshold) of the highest wait threshold the queue's oldest job has passed, if any."""
        wait = queue.oldest_wait
        if wait is None:
            return None
        critical, warning = self.waits_critical.get(queue.name), self.waits.get(queue.name)
        if critical is not None and wait > critical:
            return CRITICAL, critical
        if warning is not None and wait > warning:
            return WARNING, warning
        return None

    def failed_level(self, failed: int) -> str:
        if failed > self.failed_critical:
            return CRITICAL
        if failed >= self.failed_warning:
            return WARNING
        return HEALTHY


@dataclass(frozen=True)
class QueueState:
    """A queue at a moment."""

    name: str
    depth: int | None  # waiting jobs; None: the broker could not be read
    oldest_wait: float | None  # seconds the oldest waiting job has waited
    paused: bool = False
    workers: int = 0  # workers configured for this queue (consuming it unless it is paused)
    running: int = 0  # jobs of this queue running now
    finished_minute: int = 0  # jobs that succeeded or failed in the last minute, from the history
    finished_hour: int = 0
    failed_hour: int = 0

    @property
    def failure_rate(self) -> float | None:
        return self.failed_hour / self.finished_hour if self.finished_hour else None


@dataclass(frozen=True)
class QueueHealth:
    name: str
    level: str
    worker_status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemHealth:
    level: str
    broker_ok: bool
    failed: int
    queues: tuple[QueueHealth, ...]
    reasons: tuple[str, ...] = field(default=())
    media_problem: str = ""  # why the media store cannot be used, or ""

    @property
    def healthy(self) -> bool:
        return self.level == HEALTHY


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default=HEALTHY)


def worker_status(queue: QueueState, thresholds: Thresholds) -> str:
    if queue.depth is None:
        return "unknown"
    if queue.paused:
        return "paused"
    if queue.running:
        return "processing"
    if queue.depth == 0:
        return "idle"
    if queue.oldest_wait is not None and queue.oldest_wait >= thresholds.stalled_seconds:
        return "stalled"
    return "pending"


def queue_health(queue: QueueState, thresholds: Thresholds) -> QueueHealth:
    status = worker_status(queue, thresholds)
    if queue.depth is None:
        return QueueHealth(queue.name, CRITICAL, status, ("broker unreachable",))
    findings: list[tuple[str, str]] = []
    if queue.workers == 0:
        # No worker for a queue with jobs in it: nothing will ever run them.
        level = CRITICAL if queue.depth else WARNING
        findings.append((level, "no worker consumes this queue"))
    if status == "stalled" and queue.workers and not queue.paused:
        findings.append((CRITICAL, f"jobs waiting over {thresholds.stalled_seconds} s and none running"))
    if status == "paused" and queue.depth:
        findings.append((WARNING, f"paused with {queue.depth} jobs waiting"))
    if queue.depth > thresholds.depth_critical:
        findings.append(
            (CRITICAL, f"{queue.depth} jobs waiting (critical above {thresholds.depth_critical})")
        )
    elif queue.depth >= thresholds.depth_warning:
        findings.append((WARNING, f"{queue.depth} jobs waiting (warning from {thresholds.depth_warning})"))
    exceeded = thresholds.wait_exceeded(queue)
    if exceeded is not None:
        level, limit = exceeded
        findings.append((level, f"oldest job waited {queue.oldest_wait:.0f} s ({level} above {limit} s)"))
    return QueueHealth(
        queue.name,
        worst([level for level, _ in findings]),
        status,
        tuple(reason for _, reason in findings),
    )


def system_health(
    queues: list[QueueState],
    *,
    broker_ok: bool,
    failed: int,
    thresholds: Thresholds,
    schedules: Sequence[ScheduleState] = (),
    media_problem: str = "",
    unpublished: int = 0,
    unpublished_oldest: float | None = None,
) -> SystemHealth:
    queue_results = tuple(queue_health(queue, thresholds) for queue in queues)
    reasons = []
    levels = [result.level for result in queue_results]
    for schedule in schedules:
        # A warning, never critical: a missed run is worth a look (and a mail), the queues still work.
        if schedule.late:
            levels.append(WARNING)
            reasons.append(f"schedule {schedule.name}: {schedule.reason}")
    if not broker_ok:
        levels.append(CRITICAL)
        reasons.append("broker unreachable")
    if media_problem:
        # Uploads answer 503 and thumbnail jobs wait in their retries until it is back.
        levels.append(CRITICAL)
        reasons.append(media_problem)
    if unpublished_oldest is not None and unpublished_oldest > thresholds.outbox_seconds:
        # A warning: the tasks are kept and the sweep publishes them once the broker answers.
        levels.append(WARNING)
        reasons.append(
            f"{unpublished} tasks unpublished in the outbox, the oldest for {unpublished_oldest:.0f} s "
            f"(warning above {thresholds.outbox_seconds} s; `manage.py outbox sweep` publishes them)"
        )
    failure = thresholds.failed_level(failed)
    if failure != HEALTHY:
        levels.append(failure)
        reasons.append(
            f"{failed} failed jobs (warning from {thresholds.failed_warning}, critical above {thresholds.failed_critical})"
        )
    for result in queue_results:
        reasons.extend(f"{result.name}: {reason}" for reason in result.reasons)
    return SystemHealth(worst(levels), broker_ok, failed, queue_results, tuple(reasons), media_problem)
