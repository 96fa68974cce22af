"""Job history events: merged in the buffer, upserted so a record only moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.history import JobEvent, Recorder, capped_arguments, job_events_write
from jobs.models import Job

pytestmark = pytest.mark.database

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(state: str, attempt: int = 1, **fields) -> JobEvent:
    values = {"task_id": "t-1", "task_name": "thumbnails.generate", "queue": "high", "args": [7]}
    values.update(fields)
    return JobEvent(state=state, attempt=attempt, **values)


@pytest.mark.django_db(transaction=True)
def test_a_late_queued_event_fills_in_the_publish_time_and_changes_nothing_else() -> None:
    job_events_write([event(Job.State.STARTED, worker="high@a", started_at=T0 + timedelta(seconds=2))])
    job_events_write([event(Job.State.SUCCEEDED, worker="high@a", finished_at=T0 + timedelta(seconds=5))])
    job_events_write([event(Job.State.QUEUED, published_at=T0)])
    job = Job.objects.get(task_id="t-1")
    assert job.state == Job.State.SUCCEEDED
    assert job.worker == "high@a"
    assert job.wait_seconds == 2
    assert job.run_seconds == 3
    assert job.args == [7]


@pytest.mark.django_db(transaction=True)
def test_a_retry_moves_the_record_to_the_next_attempt_and_keeps_the_last_error() -> None:
    job_events_write([event(Job.State.STARTED, started_at=T0)])
    job_events_write(
        [
            event(
                Job.State.RETRYING,
                attempt=2,
                published_at=T0,
                exception_type="OSError",
                exception_message="disk",
            )
        ]
    )
    job = Job.objects.get(task_id="t-1")
    assert (job.state, job.exception_type) == (Job.State.RETRYING, "OSError")
    job_events_write([event(Job.State.STARTED, attempt=2, started_at=T0 + timedelta(seconds=10))])
    job_events_write(
        [
            event(
                Job.State.FAILED,
                attempt=2,
                exception_type="OSError",
                exception_message="disk again",
                finished_at=T0,
            )
        ]
    )
    job = Job.objects.get(task_id="t-1")
    assert (job.state, job.attempts, job.exception_message) == (Job.State.FAILED, 2, "disk again")
    # A redelivered copy of the first attempt's start changes nothing.
    job_events_write([event(Job.State.STARTED, attempt=1, started_at=T0 + timedelta(seconds=20))])
    assert Job.objects.get(task_id="t-1").state == Job.State.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_job_records_the_worker_that_ran_it_last() -> None:
    job_events_write([event(Job.State.STARTED, worker="high@a", started_at=T0)])
    job_events_write([event(Job.State.STARTED, worker="high@b", started_at=T0 + timedelta(minutes=1))])
    job_events_write([event(Job.State.SUCCEEDED, worker="high@b", finished_at=T0 + timedelta(minutes=2))])
    job = Job.objects.get(task_id="t-1")
    assert (job.worker, job.run_seconds) == ("high@b", 60)


@pytest.mark.django_db(transaction=True)
def test_the_buffer_merges_events_of_one_task_and_flush_writes_them_in_one_go() -> None:
    recorder = Recorder()
    recorder.record(event(Job.State.SUCCEEDED, finished_at=T0 + timedelta(seconds=1)))
    recorder.record(event(Job.State.QUEUED, published_at=T0))
    recorder.record(event(Job.State.QUEUED, task_id="t-2", published_at=T0))
    assert recorder.flush() == 2
    assert Job.objects.get(task_id="t-1").state == Job.State.SUCCEEDED
    assert Job.objects.get(task_id="t-1").published_at == T0
    assert Job.objects.get(task_id="t-2").state == Job.State.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_failure_is_written_at_once_by_the_failing_process() -> None:
    recorder = Recorder()
    recorder.record(event(Job.State.FAILED, exception_type="ValueError", finished_at=T0), urgent=True)
    assert recorder.buffer == {}
    assert Job.objects.get(task_id="t-1").exception_type == "ValueError"


def test_arguments_over_the_cap_are_dropped_and_flagged(settings) -> None:
    settings.KILN_JOB_ARGS_MAX_BYTES = 100
    assert capped_arguments([1, "a"], {"b": 2}) == ([1, "a"], {"b": 2}, False)
    assert capped_arguments(["x" * 200], {}) == ([], {}, True)


@pytest.mark.django_db(transaction=True)
def test_a_record_the_database_refuses_does_not_hold_back_the_others() -> None:
    good = event(Job.State.QUEUED, task_id="good", published_at=T0)
    # A retry linked to a job that was flushed meanwhile: the link is dropped, the record kept.
    orphan = event(Job.State.QUEUED, task_id="orphan", published_at=T0, retry_of_id=987654)
    assert job_events_write([good, orphan]) == 2
    assert Job.objects.get(task_id="orphan").retry_of_id is None
    assert Job.objects.filter(task_id="good").exists()


def test_arguments_that_are_not_plain_json_are_not_kept() -> None:
    assert capped_arguments([float("nan")], {}) == ([], {}, True)
    assert capped_arguments(["a\x00b"], {}) == ([], {}, True)
    assert capped_arguments([object()], {}) == ([], {}, True)


@pytest.mark.django_db(transaction=True)
def test_a_failure_reported_without_the_jobs_context_is_final() -> None:
    from jobs.history import UNKNOWN_ATTEMPT

    job_events_write([event(Job.State.STARTED, attempt=3, worker="high@a", started_at=T0)])
    job_events_write(
        [event(Job.State.FAILED, attempt=UNKNOWN_ATTEMPT, exception_type="Reject", finished_at=T0)]
    )
    job = Job.objects.get(task_id="t-1")
    assert (job.state, job.attempts, job.exception_type) == (Job.State.FAILED, 3, "Reject")


@pytest.mark.django_db(transaction=True)
def test_a_cleared_job_is_not_brought_back_by_its_late_queued_event() -> None:
    job_events_write([event(Job.State.CLEARED, finished_at=T0)])
    job_events_write([event(Job.State.QUEUED, published_at=T0)])
    assert Job.objects.get(task_id="t-1").state == Job.State.CLEARED


@pytest.mark.django_db(transaction=True)
def test_a_revoked_job_ends_revoked(monkeypatch) -> None:
    from types import SimpleNamespace

    import jobs.receivers

    recorder = Recorder()
    monkeypatch.setattr(jobs.receivers, "recorder", recorder)
    request = SimpleNamespace(id="t-9", task_name="thumbnails.x", delivery_info={"routing_key": "high"})
    jobs.receivers.record_revoked(request=request, expired=True)
    assert recorder.flush() == 1
    job = Job.objects.get(task_id="t-9")
    assert (job.state, job.queue, job.exception_message) == (
        Job.State.REVOKED,
        "high",
        "expired before it ran",
    )


@pytest.mark.django_db(transaction=True)
def test_a_failure_is_written_with_its_issues_fingerprint_and_keeps_it_past_late_events() -> None:
    from jobs.issues import fingerprint

    job_events_write([event(Job.State.STARTED, started_at=T0)])
    assert Job.objects.get(task_id="t-1").fingerprint == "", "only a failure has an issue"
    failed = event(
        Job.State.FAILED,
        exception_type="LookupError",
        exception_message="image 7 not found",
        traceback="Traceback (most recent call last):\nLookupError: image 7 not found\n",
        finished_at=T0,
    )
    job_events_write([failed])
    expected = fingerprint("thumbnails.generate", "LookupError", "image 7 not found", failed.traceback)
    assert Job.objects.get(task_id="t-1").fingerprint == expected
    job_events_write([event(Job.State.QUEUED, published_at=T0)])  # the publisher's record, late
    assert Job.objects.get(task_id="t-1").fingerprint == expected


@pytest.mark.django_db(transaction=True)
def test_jobs_that_failed_before_fingerprints_existed_get_theirs_from_the_migration() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from tests.jobs.conftest import failure

    recorded = failure("f-1", LookupError("image 7 not found"))
    Job.objects.filter(pk=recorded.pk).update(fingerprint="")
    job_events_write([event(Job.State.SUCCEEDED, task_id="s-1", finished_at=T0)])
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("jobs", "0004_revoked_state")])
    MigrationExecutor(connection).migrate(leaves)
    assert Job.objects.get(task_id="f-1").fingerprint == recorded.fingerprint != ""
    assert Job.objects.get(task_id="s-1").fingerprint == ""
