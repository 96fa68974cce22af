"""/metrics' celery-exporter metrics: counters and histograms from the all-time rows every process adds to,
worker and queue gauges from the snapshot."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.prometheus import CELERY_COUNTERS
from metrics.store import tally_write
from metrics.tally import BOUNDS, COUNTERS, Tally, bucket_of
from tests.support.prometheus import (
    AT,
    WORKER,
    jobs_of_every_kind,
    samples,
    scrape,
    snapshot_of,
    snapshot_use,
    worker,
)

pytestmark = [pytest.mark.database, pytest.mark.django_db]

TASK = "thumbnails.generate"


def on_worker(name: str = TASK, hostname: str = WORKER, queue: str = "high") -> tuple:
    return (("hostname", hostname), ("name", name), ("queue_name", queue))


def family(text: str, name: str):
    (found,) = [each for each in text_string_to_metric_families(text) if each.name == name]
    return found


def runs(*seconds: float, waits: tuple[float, ...] = (), hostname: str = WORKER) -> Tally:
    tally = Tally()
    for run in seconds:
        tally.job_counted("succeeded", at=AT, queue="high", task_name=TASK, hostname=hostname, run=run)
    for wait in waits:
        tally.job_counted("started", at=AT, queue="high", task_name=TASK, hostname=hostname, wait=wait)
    return tally


def test_there_is_a_counter_for_each_event_kiln_counts() -> None:
    assert set(CELERY_COUNTERS) == set(COUNTERS)


def test_the_task_counters_carry_celery_exporters_names_and_labels(client, monkeypatch) -> None:
    snapshot_use(monkeypatch, snapshot_of())
    tally_write(jobs_of_every_kind())

    text = scrape(client)
    found = samples(text)

    for event in ("received", "started", "succeeded", "retried", "rejected", "revoked"):
        assert found[(f"celery_task_{event}_total", on_worker())] == 1, event
    assert found[("celery_task_failed_total", (("exception", "OSError"), *on_worker()))] == 1
    # The publish is counted on the publisher's host, a web or beat host.
    assert found[("celery_task_sent_total", on_worker(hostname="web1"))] == 1
    assert family(text, "celery_task_failed").documentation == "Sent if the execution of the task failed."
    assert family(text, "celery_task_sent").type == "counter"


def test_a_task_a_worker_saw_has_every_counter_from_zero_as_with_celery_exporter(client, monkeypatch) -> None:
    snapshot_use(monkeypatch, snapshot_of())
    tally_write(runs(2.0))

    found = samples(scrape(client))

    assert found[("celery_task_succeeded_total", on_worker())] == 1
    # failed / (failed + succeeded) has both sides before the first failure.
    assert found[("celery_task_failed_total", (("exception", ""), *on_worker()))] == 0
    assert found[("celery_task_revoked_total", on_worker())] == 0
    # Publishers are many hosts: their counts get no zeros of the workers' counters.
    tally = Tally()
    tally.job_counted("sent", at=AT, queue="high", task_name=TASK, hostname="web1")
    tally_write(tally)
    found = samples(scrape(client))
    assert ("celery_task_succeeded_total", on_worker(hostname="web1")) not in found


def test_counters_add_what_every_process_wrote_and_only_grow(client, monkeypatch) -> None:
    snapshot_use(monkeypatch, snapshot_of())
    tally_write(runs(1.0, 2.0))  # one pool process
    before = samples(scrape(client))
    tally_write(runs(3.0))  # another, later; or a second web process answering the next scrape
    after = samples(scrape(client))

    assert before[("celery_task_succeeded_total", on_worker())] == 2
    assert after[("celery_task_succeeded_total", on_worker())] == 3
    assert after[("celery_task_runtime_sum", on_worker())] == pytest.approx(6.0)


def test_run_and_wait_histograms_are_cumulative_over_the_tally_bounds(client, monkeypatch) -> None:
    snapshot_use(monkeypatch, snapshot_of())
    # 20 000 s is above the last bound (3.6 h): only +Inf holds it.
    tally_write(runs(0.01, 0.5, 0.5, 7.0, 20_000.0, waits=(0.3, 90.0)))

    text = scrape(client)

    for name, count, total in (
        ("celery_task_runtime", 5, 20_008.01),
        ("celery_task_queue_wait_time", 2, 90.3),
    ):
        histogram = family(text, name)
        assert histogram.type == "histogram"
        buckets = [sample for sample in histogram.samples if sample.name == f"{name}_bucket"]
        bounds = [sample.labels["le"] for sample in buckets]
        assert bounds == [*(str(float(bound)) for bound in BOUNDS), "+Inf"]
        values = [sample.value for sample in buckets]
        assert values == sorted(values), f"{name} buckets are not cumulative: {values}"
        found = samples(text)
        assert found[(f"{name}_count", on_worker())] == count == values[-1]
        assert found[(f"{name}_sum", on_worker())] == pytest.approx(total)
        assert {sample.labels["name"] for sample in histogram.samples} == {TASK}

    found = samples(text)

    def run_bucket(seconds: float) -> float:
        le = str(float(BOUNDS[bucket_of(seconds)]))
        return found[("celery_task_runtime_bucket", tuple(sorted((("le", le), *on_worker()))))]

    assert run_bucket(0.01) == 1
    assert run_bucket(0.5) == 3
    assert run_bucket(7.0) == 4
    assert run_bucket(BOUNDS[-1]) == 4


def test_workers_and_queues_come_from_the_snapshot_and_a_silent_worker_reads_0(client, monkeypatch) -> None:
    snapshot_use(
        monkeypatch,
        snapshot_of((worker(processes=4, active=3),), depths={"high": 7, "default": 0}),
    )
    tally_write(jobs_of_every_kind())  # also counts a job started on default@gone

    found = samples(scrape(client))

    assert found[("celery_worker_up", (("hostname", WORKER),))] == 1
    assert found[("celery_worker_tasks_active", (("hostname", WORKER),))] == 3
    assert found[("celery_worker_up", (("hostname", "default@gone"),))] == 0
    assert found[("celery_worker_tasks_active", (("hostname", "default@gone"),))] == 0
    # A publisher is not a worker: it never reads as one down.
    assert ("celery_worker_up", (("hostname", "web1"),)) not in found
    assert found[("celery_queue_length", (("queue_name", "high"),))] == 7
    assert found[("celery_queue_length", (("queue_name", "default"),))] == 0
    assert found[("celery_active_worker_count", (("queue_name", "high"),))] == 1
    assert found[("celery_active_process_count", (("queue_name", "high"),))] == 4
    assert found[("celery_active_worker_count", (("queue_name", "default"),))] == 0
    assert found[("celery_active_process_count", (("queue_name", "default"),))] == 0
    # Kiln's own metrics stay beside them.
    assert found[("kiln_queue_depth", (("queue", "high"),))] == 7


def test_a_queue_the_broker_cannot_measure_has_no_length(client, monkeypatch) -> None:
    snap = snapshot_of()
    queues = tuple(type(queue)(name=queue.name, depth=None, oldest_wait=None) for queue in snap.queues)
    snapshot_use(monkeypatch, type(snap)(**{**snap.__dict__, "queues": queues, "broker_ok": False}))

    found = samples(scrape(client))

    assert not [key for key in found if key[0] == "celery_queue_length"]
    assert found[("celery_active_worker_count", (("queue_name", "high"),))] == 0
