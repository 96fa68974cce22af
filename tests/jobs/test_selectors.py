"""jobs/selectors.py: one snapshot of the queues, workers and job history, read directly."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from broker import queues as broker_queues
from config.celery import app
from jobs import selectors
from jobs.health import CRITICAL
from jobs.models import Job

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def finished(task_id: str, queue: str, state: str, ago: timedelta) -> None:
    Job.objects.create(
        task_id=task_id, task_name="t", queue=queue, state=state, finished_at=timezone.now() - ago
    )


def test_the_failed_list_leaves_out_retried_jobs() -> None:
    finished("a", "high", Job.State.FAILED, timedelta(0))
    Job.objects.filter(task_id="a").update(retried_at=timezone.now())
    finished("b", "high", Job.State.FAILED, timedelta(0))
    assert list(selectors.failed_jobs().values_list("task_id", flat=True)) == ["b"]


def test_finished_counts_are_per_queue_and_window() -> None:
    finished("s1", "high", Job.State.SUCCEEDED, timedelta(seconds=10))
    finished("f1", "high", Job.State.FAILED, timedelta(seconds=20))
    finished("s2", "high", Job.State.SUCCEEDED, timedelta(minutes=30))
    finished("r1", "default", Job.State.REVOKED, timedelta(seconds=5))  # neither success nor failure
    assert selectors.finished_counts(timedelta(minutes=1)) == {"high": {"total": 2, "failed": 1}}
    assert selectors.finished_counts(timedelta(hours=1)) == {"high": {"total": 3, "failed": 1}}


def test_a_snapshot_reads_depth_oldest_wait_and_pauses_from_the_broker(app_broker) -> None:
    with app.connection_for_write(app_broker.url) as connection:
        for _ in range(3):
            app.send_task(
                "probe.record", args=["k", 0.0], queue="high", connection=connection, ignore_result=True
            )
    time.sleep(0.2)
    broker_queues.queue_mark_paused("default", True)
    finished("f1", "high", Job.State.FAILED, timedelta(seconds=1))
    snap = selectors.snapshot(report_timeout=0.2)
    high, default = snap.queues
    assert (high.name, high.depth, high.paused, high.workers) == ("high", 3, False, 0)
    assert 0.2 <= high.oldest_wait < 30
    assert (default.depth, default.oldest_wait, default.paused) == (0, None, True)
    assert (high.finished_minute, high.failed_hour, high.failure_rate) == (1, 1, 1.0)
    assert snap.broker_ok
    assert snap.failed == 1
    assert snap.thresholds.waits == {"high": 60, "default": 900}
    assert snap.health.queues[0].reasons == ("no worker consumes this queue",)
    data = selectors.snapshot_as_dict(snap)
    assert (data["queues"][0]["wait_warning"], data["queues"][0]["wait_critical"]) == (60, 300)
    assert data["queues"][1]["worker_status"] == "paused"


def test_with_the_broker_down_the_snapshot_says_so_and_knows_no_depth() -> None:
    snap = selectors.snapshot(report_timeout=0.2)  # the test process's broker is a missing socket
    assert not snap.broker_ok
    assert [queue.depth for queue in snap.queues] == [None, None]
    assert snap.health.level == CRITICAL
    assert "broker unreachable" in snap.health.reasons


def test_worker_reports_are_grouped_by_pool_and_foreign_workers_ignored(monkeypatch) -> None:
    replies = [
        {"high@a": {"pool": "high", "configured_queues": ["high"], "consuming": ["high"], "processes": 4,
                    "autoscale": [10, 2], "active": {"high": 3}}},
        {"default@a": {"pool": "default", "configured_queues": ["default"], "consuming": [], "processes": 2,
                       "autoscale": None, "active": {}}},
        {"other@b": {"error": "No such inspect command: kiln_report"}},
    ]  # fmt: skip
    monkeypatch.setattr(app.control, "broadcast", lambda *args, **kwargs: replies)
    workers = selectors.workers_report()
    assert [(w.hostname, w.pool, w.processes, w.autoscale) for w in workers] == [
        ("default@a", "default", 2, None),
        ("high@a", "high", 4, (10, 2)),
    ]
    assert workers[1].active == {"high": 3}
