"""jobs/selectors.py: one snapshot of the queues, workers and job history, read directly."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
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


# --- Beat's entries (jobs/schedules.py judges them) --------------------------------------------------------
def beat_entry(name: str, *, sent_ago: float | None, task: str = "probe.task", args: str = "[]", **fields):
    """An every-minute entry (unless given another schedule) beat last sent `sent_ago` seconds ago (None:
    never), created 10 minutes ago."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if "solar" not in fields:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=60, period=IntervalSchedule.SECONDS
        )
    entry = PeriodicTask.objects.create(name=name, task=task, args=args, **fields)
    now = timezone.now()
    PeriodicTask.objects.filter(pk=entry.pk).update(  # date_changed is auto_now: set it past save()
        last_run_at=None if sent_ago is None else now - timedelta(seconds=sent_ago),
        date_changed=now - timedelta(minutes=10),
    )
    return entry


def job(task_id: str, task: str, published_ago: float, *, started: bool, args: list | None = None) -> None:
    published = timezone.now() - timedelta(seconds=published_ago)
    Job.objects.create(
        task_id=task_id,
        task_name=task,
        queue="default",
        args=args or [],
        state=Job.State.SUCCEEDED if started else Job.State.QUEUED,
        published_at=published,
        started_at=published + timedelta(seconds=0.1) if started else None,
        finished_at=published + timedelta(seconds=0.2) if started else None,
    )


def test_each_beat_entry_is_judged_from_beats_last_send_and_its_own_jobs() -> None:
    from django_celery_beat.models import SolarSchedule

    beat_entry("probe: beat silent", sent_ago=600, task="probe.silent")
    beat_entry("probe: fine", sent_ago=5, task="probe.shared")
    job("fine", "probe.shared", 5, started=True)
    # Same task, other arguments: the jobs above are not its own. Sent 5 minutes ago and still waiting.
    beat_entry("probe: queue stuck", sent_ago=5, task="probe.shared", args="[1]")
    for n, ago in enumerate((5, 65, 125, 185, 245)):
        job(f"stuck-{n}", "probe.shared", ago, started=False, args=[1])
    job("stuck-started", "probe.shared", 305, started=True, args=[1])
    beat_entry("probe: never sent", sent_ago=None)
    beat_entry("probe: disabled", sent_ago=None, enabled=False)
    sunrise, _ = SolarSchedule.objects.get_or_create(event="sunrise", latitude=52.5, longitude=13.4)
    beat_entry("probe: solar", sent_ago=None, solar=sunrise)

    states = {state.name: state for state in selectors.schedule_states()}
    assert "purge: nightly" in states, "the entry migrate installs is read like any other"
    silent, fine, stuck = states["probe: beat silent"], states["probe: fine"], states["probe: queue stuck"]
    assert (silent.status, silent.missing, silent.last_started_at) == ("late", "send", None)
    assert "beat has sent nothing" in silent.reason
    assert (fine.status, fine.last_outcome) == ("on time", "succeeded")
    assert (stuck.status, stuck.missing, stuck.last_outcome) == ("late", "start", "queued")
    assert "no worker has started it since" in stuck.reason
    assert states["probe: never sent"].status == "late"  # created 10 minutes ago, first slot 9 minutes ago
    assert (states["probe: disabled"].status, states["probe: disabled"].reason) == ("not watched", "disabled")
    solar = states["probe: solar"]
    assert (solar.status, solar.cadence) == ("not watched", "at sunrise (52.5, 13.4)")


def test_a_grace_set_by_name_holds_off_the_late_verdict(settings) -> None:
    beat_entry("probe: beat silent", sent_ago=600)
    settings.KILN_SCHEDULE_GRACE = {"probe: beat silent": 3600}
    state = next(state for state in selectors.schedule_states() if state.name == "probe: beat silent")
    assert (state.status, state.grace) == ("due", timedelta(hours=1))


def test_a_late_entry_is_a_warning_in_jobs_health_with_its_reason(app_broker, monkeypatch) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.update(last_run_at=timezone.now())  # the nightly purge: just sent
    workers = [
        selectors.WorkerInfo(f"{name}@a", name, (name,), (name,), 2, None, {})
        for name in selectors.queue_names()
    ]
    monkeypatch.setattr(selectors, "workers_report", lambda timeout=None: workers)
    beat_entry("probe: beat silent", sent_ago=600)

    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("jobs", "health", "--exit-code", stdout=out)
    assert exited.value.code == 1, "late is a warning, not critical"
    assert out.getvalue().startswith("system: warning\n")
    assert "  schedule probe: beat silent: warning, late since " in out.getvalue()

    out = StringIO()
    call_command("jobs", "health", "--json", stdout=out)
    data = json.loads(out.getvalue())
    late = next(entry for entry in data["schedules"] if entry["name"] == "probe: beat silent")
    assert (late["status"], late["late"], late["cadence"], late["grace_seconds"]) == (
        "late",
        True,
        "every minute",
        180.0,
    )
    assert data["reasons"] == [f"schedule probe: beat silent: {late['reason']}"]


# --- Issues: the failed jobs grouped by fingerprint (jobs/issues.py) ------------------------------------
def test_one_task_failing_three_ways_makes_three_issues_with_their_counts() -> None:
    from jobs import services
    from tests.jobs.conftest import failure

    start = timezone.now() - timedelta(hours=1)
    for n, queue in enumerate(("high", "high", "default", "high")):
        failure(f"lost-{n}", LookupError(f"image {1000 + n * 37} not found"), queue=queue,
                finished_at=start + timedelta(minutes=n))  # fmt: skip
    for n in range(3):
        try:
            services.duration_parse(f"{n}0 minutes")  # raised in Kiln's code, with its frame
        except services.OperationRefused as error:
            failure(f"refused-{n}", error, finished_at=start + timedelta(minutes=10 + n))
    for n in range(2):
        failure(f"slow-{n}", TimeoutError(f"time limit exceeded after {120 + n} s"),
                finished_at=start + timedelta(minutes=5 + n))  # fmt: skip
    failure("handled", LookupError("image 1 not found"), finished_at=start + timedelta(minutes=30))
    Job.objects.filter(task_id="handled").update(retried_at=timezone.now())  # left the failed list

    found = selectors.issues()
    assert [(issue.title, issue.count) for issue in found] == [
        ("OperationRefused: '<value>' is not a duration: use a number and s, m, h or d (<n>, <n>)", 3),
        ("TimeoutError: time limit exceeded after <n> s", 2),
        ("LookupError: image <n> not found", 4),
    ], "the one seen last first"
    refused, _slow, lost = found
    assert lost.queues == {"high": 3, "default": 1}
    assert (lost.first_seen, lost.last_seen) == (start, start + timedelta(minutes=3))
    assert lost.sample.task_id == "lost-3", "the latest"
    assert {job.fingerprint for job in Job.objects.filter(task_id__startswith="lost-")} == {lost.fingerprint}
    assert refused.sample.task_name == "thumbnails.generate"
    assert selectors.issue(refused.fingerprint).sample.traceback.count("jobs/services.py") == 1
    assert selectors.issue("0" * 12) is None


def test_an_issue_leaves_the_list_when_its_jobs_are_dealt_with() -> None:
    from tests.jobs.conftest import failure

    first = failure("a", ValueError("not an image"))
    failure("b", ValueError("not an image"))
    Job.objects.filter(task_id="a").update(retried_at=timezone.now())
    (issue,) = selectors.issues()
    assert (issue.count, issue.sample.task_id) == (1, "b")
    Job.objects.filter(task_id="b").delete()
    assert selectors.issues() == []
    assert selectors.issue(first.fingerprint) is None


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
