"""Job events counted by the history's writer and read back as a window of points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs.history import JobEvent, Recorder
from jobs.models import Job
from metrics.models import Tally
from metrics.selectors import WINDOWS, series, task_summaries
from metrics.store import tally_write
from metrics.tally import HOUR, MINUTE, TOTAL, bucket_of
from metrics.tally import Tally as MemoryTally

pytestmark = pytest.mark.database

T0 = datetime(2026, 12, 4, 10, 17, 0, tzinfo=UTC)


def job(task_id: str, state: str, **fields) -> JobEvent:
    values = {"task_name": "thumbnails.generate", "queue": "high", "worker": "high@a"}
    values.update(fields)
    return JobEvent(task_id=task_id, state=state, attempt=1, **values)


def run_one(
    recorder: Recorder, task_id: str, *, wait: float, run: float, fails: str = "", at: datetime = T0
) -> None:
    published = at
    started = published + timedelta(seconds=wait)
    finished = started + timedelta(seconds=run)
    recorder.record(job(task_id, Job.State.QUEUED, worker="", published_at=published), counted="sent")
    recorder.record(
        job(task_id, Job.State.STARTED, published_at=published, started_at=started), counted="started"
    )
    if fails:
        final = job(task_id, Job.State.FAILED, finished_at=finished, exception_type=fails)
        recorder.record(final, counted="failed")
    else:
        recorder.record(job(task_id, Job.State.SUCCEEDED, finished_at=finished), counted="succeeded")


@pytest.mark.django_db(transaction=True)
def test_the_writer_adds_each_processs_counts_and_times_to_the_same_rows() -> None:
    first, second = Recorder(), Recorder()  # two processes (or hosts) writing the same minute
    run_one(first, "a", wait=0.5, run=2.0)
    run_one(second, "b", wait=0.5, run=2.0)
    run_one(second, "c", wait=30.0, run=0.1, fails="OSError")
    first.flush()
    second.flush()
    minute = {
        (row.measure, row.label): row.value
        for row in Tally.objects.filter(span=MINUTE, period=T0, queue="high", task_name="thumbnails.generate")
    }
    assert minute[("sent", "")] == 3
    assert minute[("started", "")] == 3
    assert minute[("succeeded", "")] == 2
    assert minute[("failed", "OSError")] == 1
    assert minute[("run_bucket", str(bucket_of(2.0)))] == 2
    assert minute[("wait_bucket", str(bucket_of(30.0)))] == 1
    assert minute[("run_seconds", "")] == pytest.approx(4.1)
    assert Tally.objects.get(span=HOUR, measure="succeeded").value == 2
    # All time keeps the host, as celery-exporter's counters do.
    assert Tally.objects.get(span=TOTAL, measure="succeeded", hostname="high@a").value == 2
    # The records were written too: the tally rides along with them.
    assert Job.objects.filter(state=Job.State.SUCCEEDED).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_tally_that_cannot_be_written_is_kept_and_counted_once_when_the_database_is_back(
    monkeypatch,
) -> None:
    recorder = Recorder()
    run_one(recorder, "a", wait=0.5, run=2.0)

    def database_down(tally: MemoryTally) -> int:
        raise OSError("database down")

    monkeypatch.setattr("jobs.history.tally_write", database_down)
    recorder.flush()
    assert not Tally.objects.exists()
    monkeypatch.setattr("jobs.history.tally_write", tally_write)
    recorder.flush()
    assert Tally.objects.get(span=MINUTE, measure="succeeded").value == 1
    assert Tally.objects.get(span=MINUTE, measure="sent").value == 1


@pytest.mark.django_db(transaction=True)
def test_a_gauge_keeps_the_highest_sample_of_its_minute_and_its_hour() -> None:
    for depth, minute in ((40, 0), (7, 0), (12, 5)):
        tally = MemoryTally()
        tally.add("depth", at=T0 + timedelta(minutes=minute), queue="high", task_name="", value=depth)
        tally_write(tally)
    assert Tally.objects.get(span=MINUTE, period=T0, measure="depth").value == 40
    assert Tally.objects.get(span=HOUR, measure="depth").value == 40


@pytest.mark.django_db(transaction=True)
def test_a_window_bins_the_rows_into_points_with_percentiles_and_failures() -> None:
    recorder = Recorder()
    for index in range(99):
        run_one(recorder, f"fast-{index}", wait=0.05, run=0.1, at=T0)
    run_one(recorder, "slow", wait=100.0, run=50.0, at=T0)
    run_one(recorder, "broken", wait=0.05, run=0.1, fails="ValueError", at=T0 + timedelta(minutes=3))
    recorder.flush()
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=5), tick=False):
        hour = series(window=WINDOWS["1h"], queue="high")
        summaries = task_summaries(window=WINDOWS["1h"])
    assert len(hour.points) == 60
    by_start = {point.start: point for point in hour.points}
    # Each event counts in the minute it happened: the slow job started at 10:18:40 and ended at 10:19:30.
    assert by_start[T0].finished() == 99
    assert by_start[T0 + timedelta(minutes=1)].count("started") == 1
    assert by_start[T0 + timedelta(minutes=2)].count("succeeded") == 1
    assert by_start[T0 + timedelta(minutes=3)].failures == {"ValueError": 1}
    assert hour.points[-1].start == T0 + timedelta(minutes=10)  # the minute still running is the last point
    total = hour.total()
    assert (total.count("succeeded"), total.count("failed")) == (100, 1)
    assert total.quantile("wait", 0.5) < 0.1
    assert total.quantile("wait", 0.995) > 60
    (summary,) = summaries
    assert (summary.task_name, summary.queues, summary.succeeded, summary.failed) == (
        "thumbnails.generate",
        ("high",),
        100,
        1,
    )
    assert summary.failure_rate == pytest.approx(1 / 101)
    assert summary.run_p95 < 0.2


@pytest.mark.django_db(transaction=True)
def test_a_day_of_the_90_day_window_is_a_local_day(settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    tally = MemoryTally()
    # 23:30 UTC on 3 Dec is 00:30 on 4 Dec in Berlin: it belongs to the 4th.
    tally.job_counted("succeeded", at=datetime(2026, 12, 3, 23, 30, tzinfo=UTC), queue="high", task_name="t")
    tally_write(tally)
    with time_machine.travel(datetime(2026, 12, 4, 12, 0, tzinfo=UTC), tick=False):
        days = series(window=WINDOWS["90d"], queue="high")
    assert len(days.points) == 90
    assert days.points[-1].start == datetime(2026, 12, 3, 23, 0, tzinfo=UTC)  # Berlin's midnight
    assert days.points[-1].count("succeeded") == 1
