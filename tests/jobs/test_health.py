"""The health rules: pure functions, no broker, no database."""

from __future__ import annotations

from jobs.health import (
    CRITICAL,
    HEALTHY,
    WARNING,
    QueueState,
    Thresholds,
    queue_health,
    system_health,
    worker_status,
)

THRESHOLDS = Thresholds(waits={"high": 60, "default": 900}, waits_critical={"high": 300, "default": 3600})


def figures(**overrides) -> QueueState:
    values = {"name": "high", "depth": 0, "oldest_wait": None, "workers": 1, "running": 0, "paused": False}
    values.update(overrides)
    return QueueState(**values)


def test_an_empty_queue_with_a_worker_is_idle_and_healthy() -> None:
    result = queue_health(figures(), THRESHOLDS)
    assert (result.level, result.worker_status, result.reasons) == (HEALTHY, "idle", ())


def test_a_queue_with_running_jobs_is_processing() -> None:
    assert worker_status(figures(depth=3, oldest_wait=100, running=2), THRESHOLDS) == "processing"


def test_jobs_that_just_arrived_are_pending_and_stall_after_the_threshold() -> None:
    assert worker_status(figures(depth=1, oldest_wait=29.9), THRESHOLDS) == "pending"
    stalled = queue_health(figures(depth=1, oldest_wait=30), THRESHOLDS)
    assert stalled.worker_status == "stalled"
    assert stalled.level == CRITICAL


def test_an_unreadable_broker_makes_every_queue_unknown_and_critical() -> None:
    result = queue_health(figures(depth=None), THRESHOLDS)
    assert (result.level, result.worker_status) == (CRITICAL, "unknown")


def test_a_paused_queue_with_waiting_jobs_is_a_warning_not_a_stall() -> None:
    result = queue_health(figures(depth=4, oldest_wait=45, paused=True, workers=1), THRESHOLDS)
    assert result.worker_status == "paused"
    assert result.level == WARNING


def test_no_worker_is_a_warning_for_an_empty_queue_and_critical_when_jobs_wait() -> None:
    assert queue_health(figures(workers=0), THRESHOLDS).level == WARNING
    assert queue_health(figures(workers=0, depth=1, oldest_wait=1), THRESHOLDS).level == CRITICAL


def test_queue_depth_follows_the_seeds_thresholds() -> None:
    assert queue_health(figures(depth=999, running=1, oldest_wait=1), THRESHOLDS).level == HEALTHY
    assert queue_health(figures(depth=1000, running=1, oldest_wait=1), THRESHOLDS).level == WARNING
    assert queue_health(figures(depth=5001, running=1, oldest_wait=1), THRESHOLDS).level == CRITICAL


def test_the_oldest_wait_is_judged_per_queue() -> None:
    assert queue_health(figures(depth=1, running=1, oldest_wait=61), THRESHOLDS).level == WARNING
    assert queue_health(figures(depth=1, running=1, oldest_wait=301), THRESHOLDS).level == CRITICAL
    slow_default = figures(name="default", depth=1, running=1, oldest_wait=301)
    assert queue_health(slow_default, THRESHOLDS).level == HEALTHY


def test_the_system_takes_the_worst_of_its_queues_failed_jobs_and_broker() -> None:
    healthy = [figures(), figures(name="default")]
    assert system_health(healthy, broker_ok=True, failed=9, thresholds=THRESHOLDS).level == HEALTHY
    assert system_health(healthy, broker_ok=True, failed=10, thresholds=THRESHOLDS).level == WARNING
    assert system_health(healthy, broker_ok=True, failed=51, thresholds=THRESHOLDS).level == CRITICAL
    down = system_health(healthy, broker_ok=False, failed=0, thresholds=THRESHOLDS)
    assert down.level == CRITICAL
    assert "broker unreachable" in down.reasons
    one_slow = [figures(depth=1, running=1, oldest_wait=61), figures(name="default")]
    result = system_health(one_slow, broker_ok=True, failed=0, thresholds=THRESHOLDS)
    assert result.level == WARNING
    assert any(reason.startswith("high: oldest job waited 61 s") for reason in result.reasons)


def test_a_media_store_that_cannot_be_used_is_critical_with_its_reason() -> None:
    healthy = [figures(), figures(name="default")]
    problem = "the media store s3://kiln-media/site at http://10.0.0.9:8333 is unreachable: timed out"
    result = system_health(healthy, broker_ok=True, failed=0, thresholds=THRESHOLDS, media_problem=problem)
    assert result.level == CRITICAL
    assert problem in result.reasons
