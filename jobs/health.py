"""Health rules: pure functions from observed figures and thresholds to `healthy`/`warning`/`critical`.

Levels follow the seeds' health indicators (queue size 1000/5000, failed jobs 10/50, jobs waiting too
long); each queue also gets a worker status after the seeds' dashboards:
  processing  jobs of this queue are running
  idle        nothing waits, workers are consuming
  pending     jobs just arrived, none started yet (shorter than the stalled threshold)
  stalled     jobs wait longer than the stalled threshold and nothing of this queue runs
  paused      an operator paused the queue (`jobs pause`)
  unknown     the broker cannot be read
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEALTHY, WARNING, CRITICAL = "healthy", "warning", "critical"
LEVELS = (HEALTHY, WARNING, CRITICAL)


@dataclass(frozen=True)
class Thresholds:
    waits: dict[str, int]
    waits_critical: dict[str, int]
    depth_warning: int = 1000
    depth_critical: int = 5000
    failed_warning: int = 10
    failed_critical: int = 50
    stalled_seconds: int = 30

    @classmethod
    def from_settings(cls) -> Thresholds:
        from django.conf import settings

        return cls(
            waits=settings.KILN_QUEUE_WAITS,
            waits_critical=settings.KILN_QUEUE_WAITS_CRITICAL,
            depth_warning=settings.KILN_HEALTH_DEPTH_WARNING,
            depth_critical=settings.KILN_HEALTH_DEPTH_CRITICAL,
            failed_warning=settings.KILN_HEALTH_FAILED_WARNING,
            failed_critical=settings.KILN_HEALTH_FAILED_CRITICAL,
            stalled_seconds=settings.KILN_HEALTH_STALLED_SECONDS,
        )


@dataclass(frozen=True)
class QueueFigures:
    name: str
    depth: int | None  # None: the broker could not be read
    oldest_wait: float | None  # seconds
    workers: int  # workers consuming this queue (or configured for it while it is paused)
    running: int  # jobs of this queue running now
    paused: bool = False


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

    @property
    def healthy(self) -> bool:
        return self.level == HEALTHY


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default=HEALTHY)


def worker_status(queue: QueueFigures, thresholds: Thresholds) -> str:
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


def queue_health(queue: QueueFigures, thresholds: Thresholds) -> QueueHealth:
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
    wait = queue.oldest_wait
    critical_wait = thresholds.waits_critical.get(queue.name)
    warning_wait = thresholds.waits.get(queue.name)
    if wait is not None and critical_wait is not None and wait > critical_wait:
        findings.append((CRITICAL, f"oldest job waited {wait:.0f} s (critical above {critical_wait} s)"))
    elif wait is not None and warning_wait is not None and wait > warning_wait:
        findings.append((WARNING, f"oldest job waited {wait:.0f} s (warning above {warning_wait} s)"))
    return QueueHealth(
        queue.name,
        worst([level for level, _ in findings]),
        status,
        tuple(reason for _, reason in findings),
    )


def failed_level(failed: int, thresholds: Thresholds) -> str:
    if failed > thresholds.failed_critical:
        return CRITICAL
    if failed >= thresholds.failed_warning:
        return WARNING
    return HEALTHY


def system_health(
    queues: list[QueueFigures], *, broker_ok: bool, failed: int, thresholds: Thresholds
) -> SystemHealth:
    queue_results = tuple(queue_health(queue, thresholds) for queue in queues)
    reasons = []
    levels = [result.level for result in queue_results]
    if not broker_ok:
        levels.append(CRITICAL)
        reasons.append("broker unreachable")
    failure = failed_level(failed, thresholds)
    if failure != HEALTHY:
        levels.append(failure)
        reasons.append(
            f"{failed} failed jobs (warning from {thresholds.failed_warning}, critical above {thresholds.failed_critical})"
        )
    for result in queue_results:
        reasons.extend(f"{result.name}: {reason}" for reason in result.reasons)
    return SystemHealth(worst(levels), broker_ok, failed, queue_results, tuple(reasons))
