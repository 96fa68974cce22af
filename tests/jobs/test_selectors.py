"""jobs/selectors.py: one snapshot of the queues, workers and job history, read directly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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


# --- jobs_search ----------------------------------------------------------------------------------------
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def recorded(task_id: str, *, args=(), kwargs=None, ago: timedelta = timedelta(0), **fields) -> Job:
    values = {
        "task_name": "thumbnails.tasks.rendition_generate",
        "queue": "high",
        "state": "succeeded",
        "published_at": T0 - ago,
    }
    values.update(fields)
    return Job.objects.create(task_id=task_id, args=list(args), kwargs=kwargs or {}, **values)


def found(**filters) -> list[str]:
    return list(selectors.jobs_search(**filters).values_list("task_id", flat=True))


def test_an_argument_is_found_by_its_whole_value_in_args_or_kwargs() -> None:
    recorded("number", args=[12])
    recorded("string", args=["12"])
    recorded("keyword", kwargs={"image_id": 12, "force": True})
    recorded("in-a-list", kwargs={"image_ids": [7, 12]})
    recorded("longer", args=[123])
    recorded("ends-alike", args=[412])
    recorded("inside-text", kwargs={"note": "a 12 b", "report_id": 5})
    recorded("as-a-key", kwargs={"12": "x"})
    assert found(argument="12") == ["in-a-list", "keyword", "string", "number"]
    assert found(argument='"12"') == ["string"]
    assert found(argument="a 12 b") == ["inside-text"]
    assert found(argument="true") == ["keyword"]
    assert found(argument="1") == []


def test_text_arguments_match_whatever_their_case() -> None:
    recorded("photo", args=["Photo-7.JPG"])
    assert found(argument="photo-7.jpg") == ["photo"]


def test_like_wildcards_in_an_argument_are_plain_characters() -> None:
    recorded("percent", args=["50%"])
    recorded("other", args=["50x"])
    assert found(argument="50%") == ["percent"]
    assert found(argument="5_x") == []


def test_the_record_written_by_the_history_is_found_by_its_arguments() -> None:
    from jobs.history import JobEvent, job_events_write

    job_events_write(
        [
            JobEvent(
                task_id="h", state="queued", attempt=1, task_name="t", queue="high", kwargs={"report_id": 9}
            )
        ]
    )
    # A later event never changes the arguments recorded first.
    job_events_write([JobEvent(task_id="h", state="started", attempt=1, args=[10])])
    assert found(argument="9") == ["h"]
    assert found(argument="10") == []


def test_filters_combine_and_the_newest_job_comes_first() -> None:
    recorded("old-failed", state="failed", ago=timedelta(hours=5))
    recorded("failed", state="failed", ago=timedelta(hours=1))
    recorded("failed-default", state="failed", queue="default", ago=timedelta(hours=1))
    recorded("succeeded", ago=timedelta(hours=1))
    recorded("other-task", task_name="purge.tasks.purge_run", state="failed", ago=timedelta(hours=1))
    assert found(task="thumbnails.tasks.rendition_generate", state="failed", queue="high") == [
        "failed",
        "old-failed",
    ]
    assert found(state="failed", since=T0 - timedelta(hours=2)) == ["other-task", "failed-default", "failed"]


def test_the_time_range_holds_its_start_and_not_its_end() -> None:
    recorded("at-start", ago=timedelta(hours=2))
    recorded("inside", ago=timedelta(hours=1, minutes=30))
    recorded("at-end", ago=timedelta(hours=1))
    recorded("unpublished", ago=timedelta(0), published_at=None)
    assert found(since=T0 - timedelta(hours=2), until=T0 - timedelta(hours=1)) == ["inside", "at-start"]
    assert found(until=T0 - timedelta(hours=1, minutes=30)) == ["at-start"]


def test_the_jobs_recorded_before_the_column_existed_are_filled_in() -> None:
    import importlib

    from django.db import connection

    migration = importlib.import_module("jobs.migrations.0006_job_argument_values")
    recorded("before", args=[12], kwargs={"name": "x"})
    recorded("no-arguments")
    Job.objects.update(argument_values="")
    migration.fill(None, type("SchemaEditor", (), {"connection": connection})())
    assert dict(Job.objects.values_list("task_id", "argument_values")) == {
        "before": '\n12\n"x"\n',
        "no-arguments": "",
    }


def test_the_argument_search_can_read_its_index_on_either_database() -> None:
    """A canary for the query's shape: the trigram index serves `LIKE` on the bare column, the SQLite index
    a subquery that needs nothing but the column (an icontains, an UPPER() or a cast would lose them)."""
    from django.db import connection

    recorded("one", args=[12])
    jobs = Job.objects.filter(selectors.argument_matches("12"))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A table this small is read whole (or along its primary key) otherwise.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_indexscan = off")
            assert "jobs_job_argument_values_trgm" in jobs.explain()
    else:
        assert "COVERING INDEX jobs_job_argument_values" in jobs.explain()


def test_a_time_range_is_read_through_its_index_on_sqlite_whatever_else_is_asked() -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL chooses by its statistics")
    jobs = selectors.jobs_search(task="t", state="succeeded", queue="high", since=T0, until=T0)
    plan = jobs.explain()
    assert "jobs_job_published_at" in plan
    assert "USE TEMP B-TREE" not in plan  # the index gives the order too
