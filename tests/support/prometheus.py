"""/metrics in tests: scrape it, read its samples, and fill it so that every family it exposes has samples
(what the rule and dashboard tests compare their expressions with)."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from jobs import health, selectors
from jobs.models import Alert, Job
from jobs.rejections import rejections_read
from metrics.store import tally_write
from metrics.tally import Tally
from purge.models import PurgeRun, RetentionPolicy
from purge.schedule import NIGHTLY_NAME

AT = datetime(2026, 12, 4, 10, 17, tzinfo=UTC)
WORKER = "high@worker1"


def promtool() -> str:
    """Prometheus' own checker: `make test` installs it (Debian's package prometheus) before the suite."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: `make promtool` installs it as root, or `apt-get install --no-install-recommends"
            " prometheus`"
        )
    return path


# celery-exporter's own names, kept for the dashboards written for it, break one of promtool's naming lints.
CELERY_EXPORTERS_NAMES = {
    f'{name} non-histogram and non-summary metrics should not have "_count" suffix'
    for name in ("celery_active_worker_count", "celery_active_process_count")
}


def promtool_check_metrics(text: str) -> set[str]:
    """`promtool check metrics` on a scrape: its findings, beyond those on celery-exporter's names."""
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    problems = {line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()}
    # 3: lint findings only (0 without any); 1 would be an exposition promtool cannot parse.
    assert result.returncode == (3 if problems else 0), result.stdout + result.stderr
    return problems - CELERY_EXPORTERS_NAMES


def scrape(client: Any) -> str:
    """/metrics as Prometheus reads it, from an allowed address."""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200, response.content
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def worker(
    hostname: str = WORKER, *, queues: tuple[str, ...] = ("high",), processes: int = 2, active: int = 0
) -> selectors.WorkerInfo:
    """A worker as it answers the snapshot's broadcast."""
    return selectors.WorkerInfo(
        hostname=hostname,
        pool=hostname.split("@")[0],
        configured_queues=queues,
        consuming=queues,
        processes=processes,
        autoscale=None,
        active={queues[0]: active} if active else {},
    )


def snapshot_of(
    workers: tuple[selectors.WorkerInfo, ...] = (), depths: dict[str, int] | None = None
) -> selectors.Snapshot:
    """A snapshot as the workers and the broker would give it, without either running."""
    depths = depths or {}
    queues = [
        health.QueueState(
            name=name,
            depth=depths.get(name, 0),
            oldest_wait=3.0 if depths.get(name) else None,
            workers=sum(1 for each in workers if name in each.configured_queues),
            running=sum(each.active.get(name, 0) for each in workers),
        )
        for name in selectors.queue_names()
    ]
    thresholds = health.Thresholds.from_settings()
    pools: dict[str, list[selectors.WorkerInfo]] = {}
    for each in workers:
        pools.setdefault(each.pool, []).append(each)
    return selectors.Snapshot(
        taken_at=time.time(),
        broker_ok=True,
        queues=tuple(queues),
        workers=workers,
        failed=0,
        health=health.system_health(queues, broker_ok=True, failed=0, thresholds=thresholds),
        thresholds=thresholds,
        pools=pools,
        rejections=rejections_read(),
        schedules=selectors.schedule_states(),
    )


def snapshot_use(monkeypatch: Any, snap: selectors.Snapshot) -> None:
    """The collector reads `snap` (and never a snapshot another test cached in this process)."""
    monkeypatch.setattr(selectors, "snapshot_cached", lambda max_age=2.0: snap)


def jobs_of_every_kind() -> Tally:
    """One task's life on one worker, from publish to every ending, and a worker seen once but silent now."""
    tally = Tally()
    place = {"at": AT, "queue": "high", "task_name": "thumbnails.generate"}
    tally.job_counted("sent", hostname="web1", **place)
    for event in ("received", "started", "succeeded", "failed", "retried", "rejected", "revoked"):
        tally.job_counted(
            event,
            hostname=WORKER,
            exception="OSError" if event == "failed" else "",
            wait=0.4 if event == "started" else None,
            run=1.5 if event in ("succeeded", "failed", "retried") else None,
            **place,
        )
    tally.job_counted("started", hostname="default@gone", at=AT, queue="default", task_name="purge.run")
    return tally


def scrape_every_family(client: Any, monkeypatch: Any) -> str:
    """/metrics with something in every family: counted jobs, an answering worker, a job in the history,
    a firing alert. Fails if a family still has no sample, so that a name missing from the scrape is one
    /metrics never exposes, not one this data forgot."""
    tally_write(jobs_of_every_kind())
    now = timezone.now()
    # The nightly purge's entry (installed by migrate), sent by beat and started by a worker just now.
    PeriodicTask.objects.filter(name=NIGHTLY_NAME).update(last_run_at=now)
    Job.objects.create(
        task_id="nightly-1", task_name="purge.tasks.purge_nightly", queue="default", state=Job.State.STARTED,
        published_at=now, started_at=now,
    )  # fmt: skip
    snapshot_use(monkeypatch, snapshot_of((worker(active=1),), depths={"high": 2}))
    Job.objects.create(
        task_id="scraped-1", task_name="thumbnails.generate", queue="high", state=Job.State.SUCCEEDED,
        published_at=now - timedelta(seconds=3), started_at=now - timedelta(seconds=2), finished_at=now,
    )  # fmt: skip
    Alert.objects.create(key="wait:high", message="waits", firing=True, first_seen_at=now, last_seen_at=now)
    PurgeRun.objects.create(
        policy=RetentionPolicy.objects.get(target="report_history"), state=PurgeRun.State.DONE,
        trigger=PurgeRun.Trigger.NIGHTLY, started_at=now - timedelta(seconds=40), finished_at=now, removed=1200,
    )  # fmt: skip
    text = scrape(client)
    empty = [family.name for family in text_string_to_metric_families(text) if not family.samples]
    assert not empty, f"families without samples: {empty}"
    return text


def sample_names(text: str) -> set[str]:
    """The names PromQL can select: the samples' (celery_task_failed_total, celery_task_runtime_bucket),
    not the families' (celery_task_failed, celery_task_runtime)."""
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
