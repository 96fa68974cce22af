"""Prometheus: the collector behind /metrics (Kiln's kiln_* metrics, and celery-exporter's celery_* ones read
from the metrics over time), and the alert rules generated from the same thresholds as `jobs health` and the
alert mails.

`manage.py jobs prometheus-rules` prints the rules; deploy/prometheus/kiln-alerts.yml is its output for the
default settings (a test keeps the two equal).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.utils import floatToGoString

from jobs import health, selectors
from jobs.health import Thresholds
from jobs.models import Alert, Job
from metrics import selectors as metrics_selectors
from metrics.tally import BOUNDS, SUMS

# Upper bounds of the wait- and run-time buckets, in seconds (the time limits are 120 and 300 s).
BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HISTOGRAM_WINDOW = timedelta(hours=1)

# celery-exporter's metrics (danihodovic/celery-exporter, src/exporter.py) under its names, help texts and
# labels, so the dashboards and alerts written for it keep working. It counts the events one exporter
# process watched; these are read from the all-time rows of metrics over time, which every Kiln process
# adds to: the counters only grow, whichever web process answers the scrape, on whichever host.
# `hostname` is Celery's node name (high@web1) where celery-exporter keeps the host alone (web1): Kiln runs
# one worker per pool on each host, and an operator needs to know which of them stopped.
CELERY_TASK_LABELS = ["name", "hostname", "queue_name"]
CELERY_COUNTERS = {
    "sent": "Sent when a task message is published.",
    "received": "Sent when the worker receives a task.",
    "started": "Sent just before the worker executes the task.",
    "succeeded": "Sent if the task executed successfully.",
    "failed": "Sent if the execution of the task failed.",
    "rejected": "The task was rejected by the worker, possibly to be re-queued or moved to a dead letter queue.",
    "revoked": "Sent if the task has been revoked.",
    "retried": "Sent if the task failed, but will be retried in the future.",
}
# celery-exporter observes the run time of successes only; Kiln counts every run that ended (succeeded,
# failed or retried). It has no wait histogram: the name is Kiln's, in its style.
CELERY_HISTOGRAMS = {
    "run": ("celery_task_runtime", "Histogram of task runtime measurements."),
    "wait": (
        "celery_task_queue_wait_time",
        "Histogram of the time tasks waited in their queue before they started.",
    ),
}
# Events only a worker counts: the node names in their rows are the workers ever seen.
WORKER_EVENTS = ("received", "started")

TaskKey = tuple[str, str, str]  # name, hostname, queue_name

# A task whose jobs fail more than this share of the time over the window alerts (celery-exporter's mixin
# alerts on its CeleryTaskHighFailRate alike).
TASK_FAILURE_RATIO = 0.05
TASK_FAILURE_MINUTES = 10


class KilnCollector:
    """Reads everything at scrape time: one snapshot, the all-time rows, three aggregate queries."""

    def collect(self) -> Any:
        snap = selectors.snapshot_cached()
        yield from self._queues(snap)
        yield from self._workers(snap)
        yield self._rejections(snap)
        yield from self._schedules(snap)
        yield from self._jobs()
        yield from self._histograms()
        alerts = GaugeMetricFamily("kiln_alert_firing", "1 while an alert condition holds", labels=["alert"])
        for key in Alert.objects.filter(firing=True).values_list("key", flat=True):
            alerts.add_metric([key], 1)
        yield alerts
        totals = metrics_selectors.totals()
        yield from self._celery_tasks(totals)
        yield from self._celery_workers(snap, totals)

    def _queues(self, snap: selectors.Snapshot) -> Any:
        up = GaugeMetricFamily("kiln_broker_up", "1 when the broker answers")
        up.add_metric([], 1 if snap.broker_ok else 0)
        yield up
        media = GaugeMetricFamily(
            "kiln_media_store_up", "1 when the media store (MEDIA_ROOT or the S3 bucket) can be used"
        )
        media.add_metric([], 0 if snap.health.media_problem else 1)
        yield media
        depth = GaugeMetricFamily("kiln_queue_depth", "jobs waiting in the queue", labels=["queue"])
        wait = GaugeMetricFamily(
            "kiln_queue_oldest_wait_seconds", "how long the oldest waiting job has waited", labels=["queue"]
        )
        paused = GaugeMetricFamily("kiln_queue_paused", "1 while the queue is paused", labels=["queue"])
        running = GaugeMetricFamily("kiln_queue_running", "jobs of the queue running now", labels=["queue"])
        level = GaugeMetricFamily("kiln_queue_health", "0 healthy, 1 warning, 2 critical", labels=["queue"])
        levels = {result.name: health.LEVELS.index(result.level) for result in snap.health.queues}
        for queue in snap.queues:
            if queue.depth is not None:
                depth.add_metric([queue.name], queue.depth)
            wait.add_metric([queue.name], queue.oldest_wait or 0.0)
            paused.add_metric([queue.name], 1 if queue.paused else 0)
            running.add_metric([queue.name], queue.running)
            level.add_metric([queue.name], levels[queue.name])
        yield from (depth, wait, paused, running, level)
        system = GaugeMetricFamily("kiln_health", "0 healthy, 1 warning, 2 critical")
        system.add_metric([], health.LEVELS.index(snap.health.level))
        yield system
        failed = GaugeMetricFamily("kiln_failed_jobs", "failed jobs not retried or forgotten")
        failed.add_metric([], snap.failed)
        yield failed

    def _workers(self, snap: selectors.Snapshot) -> Any:
        workers = GaugeMetricFamily("kiln_workers", "workers online", labels=["pool"])
        processes = GaugeMetricFamily("kiln_worker_processes", "pool processes online", labels=["pool"])
        for pool, members in snap.pools.items():
            workers.add_metric([pool], len(members))
            processes.add_metric([pool], sum(member.processes for member in members))
        yield from (workers, processes)

    def _rejections(self, snap: selectors.Snapshot) -> GaugeMetricFamily:
        # No alert rule reads it: an uploader's bad file is information, not a page.
        family = GaugeMetricFamily(
            "kiln_inputs_rejected",
            "inputs the workers refused in the last hour (corrupt, unsupported...), by kind; not job failures",
            labels=["kind"],
        )
        counts = snap.rejections.last_hour
        for kind in (*snap.rejections.kinds, *(kind for kind in counts if kind not in snap.rejections.kinds)):
            family.add_metric([kind], counts.get(kind, 0))
        return family

    def _schedules(self, snap: selectors.Snapshot) -> Any:
        """Beat's entries (jobs/schedules.py): late is Kiln's judgement with its grace, the timestamps let a
        dashboard draw when each last ran."""
        sent = GaugeMetricFamily(
            "kiln_schedule_last_run_timestamp_seconds",
            "when beat last sent the entry's task (django-celery-beat's last_run_at)",
            labels=["schedule"],
        )
        started = GaugeMetricFamily(
            "kiln_schedule_last_start_timestamp_seconds",
            "when a worker last started the entry's task, from the job history",
            labels=["schedule"],
        )
        late = GaugeMetricFamily(
            "kiln_schedule_late",
            "1 while a watched beat entry's run has not started within its grace after its slot",
            labels=["schedule"],
        )
        for state in snap.schedules:
            if state.last_sent_at:
                sent.add_metric([state.name], state.last_sent_at.timestamp())
            if state.last_started_at:
                started.add_metric([state.name], state.last_started_at.timestamp())
            if state.watched:
                late.add_metric([state.name], 1 if state.late else 0)
        yield from (sent, started, late)

    def _jobs(self) -> Any:
        family = GaugeMetricFamily(
            "kiln_jobs",
            "jobs in the history (trimmed by retention policies) by state",
            labels=["queue", "task", "state"],
        )
        rows = Job.objects.values("queue", "task_name", "state").annotate(count=Count("id")).order_by()
        for row in rows:
            family.add_metric([row["queue"], row["task_name"], row["state"]], row["count"])
        yield family

    def _histograms(self) -> Any:
        since = timezone.now() - HISTOGRAM_WINDOW
        durations = Job.objects.filter(finished_at__gte=since, started_at__isnull=False).annotate(
            run=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()),
            wait=ExpressionWrapper(F("started_at") - F("published_at"), output_field=DurationField()),
        )
        for name, field, text in (
            ("kiln_job_run_seconds", "run", "run time of the jobs finished in the last hour"),
            (
                "kiln_job_wait_seconds",
                "wait",
                "wait (publish to start) of the jobs finished in the last hour",
            ),
        ):
            counts = {
                f"le_{i}": Count("id", filter=Q(**{f"{field}__lte": timedelta(seconds=b)}))
                for i, b in enumerate(BUCKETS)
            }
            family = GaugeHistogramMetricFamily(name, text, labels=["queue"])
            rows = (
                durations.filter(**{f"{field}__isnull": False})
                .values("queue")
                .annotate(total=Count("id"), seconds=Sum(field), **counts)
                .order_by()
            )
            for row in rows:
                buckets = [(floatToGoString(bound), row[f"le_{i}"]) for i, bound in enumerate(BUCKETS)]
                buckets.append(("+Inf", row["total"]))
                family.add_metric(
                    [row["queue"]],
                    buckets,
                    gsum_value=row["seconds"].total_seconds() if row["seconds"] else 0.0,
                )
            yield family

    def _celery_tasks(self, totals: list[metrics_selectors.TotalRow]) -> Any:
        counts: dict[str, dict[tuple[str, ...], float]] = {measure: {} for measure in CELERY_COUNTERS}
        buckets: dict[str, dict[TaskKey, dict[int, float]]] = {kind: {} for kind in CELERY_HISTOGRAMS}
        sums: dict[str, dict[TaskKey, float]] = {kind: {} for kind in CELERY_HISTOGRAMS}
        at_workers: set[TaskKey] = set()
        for row in totals:
            key = (row.task_name, row.hostname, row.queue)
            if row.measure in CELERY_COUNTERS:
                labels = _failed_labels(key, row.label) if row.measure == "failed" else key
                counts[row.measure][labels] = counts[row.measure].get(labels, 0.0) + row.value
            elif row.measure in SUMS:
                by_key = sums[row.measure.removesuffix("_seconds")]
                by_key[key] = by_key.get(key, 0.0) + row.value
            elif row.measure.endswith("_bucket") and row.label.isdigit():
                counted = buckets[row.measure.removesuffix("_bucket")].setdefault(key, {})
                counted[int(row.label)] = counted.get(int(row.label), 0.0) + row.value
            if row.measure != "sent":
                at_workers.add(key)
        # As celery-exporter does, a task a worker saw has every counter, at 0 until its first event: a
        # ratio such as failed / (failed + succeeded) then has both sides from the start.
        for key in at_workers:
            for measure, by_labels in counts.items():
                by_labels.setdefault(_failed_labels(key, "") if measure == "failed" else key, 0.0)
        for measure, text in CELERY_COUNTERS.items():
            labels = (
                ["name", "hostname", "exception", "queue_name"] if measure == "failed" else CELERY_TASK_LABELS
            )
            family = CounterMetricFamily(f"celery_task_{measure}", text, labels=labels)
            for values, count in sorted(counts[measure].items()):
                family.add_metric(list(values), count)
            yield family
        for kind, (name, text) in CELERY_HISTOGRAMS.items():
            family = HistogramMetricFamily(name, text, labels=CELERY_TASK_LABELS)
            for key, counted in sorted(buckets[kind].items()):
                family.add_metric(list(key), _cumulative(counted), sums[kind].get(key, 0.0))
            yield family

    def _celery_workers(self, snap: selectors.Snapshot, totals: list[metrics_selectors.TotalRow]) -> Any:
        up = GaugeMetricFamily(
            "celery_worker_up", "Indicates if a worker has recently sent a heartbeat.", labels=["hostname"]
        )
        active = GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing",
            labels=["hostname"],
        )
        answering = {worker.hostname: worker for worker in snap.workers}
        # A worker that ran jobs once and does not answer now reads 0 (celery-exporter's worker-offline),
        # so `celery_worker_up == 0` can alert; it keeps reading 0 until its all-time rows are deleted.
        seen = {row.hostname for row in totals if row.measure in WORKER_EVENTS and row.hostname}
        for hostname in sorted(seen | set(answering)):
            worker = answering.get(hostname)
            up.add_metric([hostname], 1 if worker else 0)
            active.add_metric([hostname], sum(worker.active.values()) if worker else 0)
        yield from (up, active)

        length = GaugeMetricFamily(
            "celery_queue_length", "The number of message in broker queue.", labels=["queue_name"]
        )
        workers = GaugeMetricFamily(
            "celery_active_worker_count",
            "The number of active workers in broker queue.",
            labels=["queue_name"],
        )
        processes = GaugeMetricFamily(
            "celery_active_process_count",
            "The number of active processes in broker queue.",
            labels=["queue_name"],
        )
        declared = [queue.name for queue in snap.queues]
        consumed = {name for worker in snap.workers for name in worker.consuming}
        for queue in snap.queues:
            if queue.depth is not None:
                length.add_metric([queue.name], queue.depth)
        # Like celery-exporter's, these count the workers consuming the queue now: a paused queue has none
        # (kiln_workers counts a pool's workers whatever they consume).
        for name in (*declared, *sorted(consumed - set(declared))):
            consuming = [worker for worker in snap.workers if name in worker.consuming]
            workers.add_metric([name], len(consuming))
            processes.add_metric([name], sum(worker.processes for worker in consuming))
        yield from (length, workers, processes)


def _failed_labels(key: TaskKey, exception: str) -> tuple[str, ...]:
    name, hostname, queue = key
    return (name, hostname, exception, queue)


def _cumulative(counted: dict[int, float]) -> list[tuple[str, float]]:
    """Bucket counts by index (metrics.tally.BOUNDS, len(BOUNDS) for +Inf) as Prometheus' cumulative
    `le` buckets: every bound, +Inf last and equal to the count."""
    buckets, total = [], 0.0
    for index, bound in enumerate(BOUNDS):
        total += counted.get(index, 0.0)
        buckets.append((floatToGoString(bound), total))
    # An index past the bounds (none today) is still a time counted: +Inf holds it.
    total += sum(count for index, count in counted.items() if index >= len(BOUNDS))
    buckets.append(("+Inf", total))
    return buckets


def _rule(name: str, expr: str, duration: str, severity: str, summary: str, **labels: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary},
    }


def alert_rules(thresholds: Thresholds, pools: list[str]) -> str:
    rules = [
        _rule(
            "KilnBrokerDown", "kiln_broker_up == 0", "1m", "critical", "Kiln's broker (Redis) does not answer"
        ),
        _rule(
            "KilnMetricsDown", 'up{job="kiln"} == 0', "5m", "critical", "Kiln's /metrics cannot be scraped"
        ),
        _rule(
            "KilnMediaStoreDown",
            "kiln_media_store_up == 0",
            "1m",
            health.CRITICAL,
            "Kiln's media store cannot be used: uploads get 503, thumbnail jobs retry (jobs health says why)",
        ),
        _rule(
            "KilnOutboxBacklog",
            f"kiln_outbox_oldest_unpublished_age_seconds > {thresholds.outbox_seconds}",
            "1m",
            health.WARNING,
            "tasks wait unpublished in the outbox for over "
            f"{thresholds.outbox_seconds} s: is the broker reachable? (`manage.py outbox status`)",
        ),
    ]
    # One rule per queue and alert, each with its own threshold in plain sight, told apart by a `queue` (or
    # `pool`) label as well as by its expression: promtool's lint takes rules of one name and one label set
    # for duplicates. The label is the one the alert's series carry anyway.
    for queue in sorted(set(thresholds.waits) | set(thresholds.waits_critical)):
        for name, severity, limits in (
            ("KilnQueueWaitWarning", health.WARNING, thresholds.waits),
            ("KilnQueueWaitCritical", health.CRITICAL, thresholds.waits_critical),
        ):
            if queue in limits:
                rules.append(
                    _rule(
                        name,
                        f'kiln_queue_oldest_wait_seconds{{queue="{queue}"}} > {limits[queue]}',
                        "1m",
                        severity,
                        f"the oldest job on {queue} has waited over {limits[queue]} s",
                        queue=queue,
                    )
                )
    rules += [
        _rule(
            "KilnQueueDepthWarning",
            f"kiln_queue_depth >= {thresholds.depth_warning}",
            "5m",
            health.WARNING,
            f"{{{{ $labels.queue }}}} holds {thresholds.depth_warning} or more waiting jobs",
        ),
        _rule(
            "KilnQueueDepthCritical",
            f"kiln_queue_depth > {thresholds.depth_critical}",
            "5m",
            health.CRITICAL,
            f"{{{{ $labels.queue }}}} holds more than {thresholds.depth_critical} waiting jobs",
        ),
        _rule(
            "KilnFailedJobsWarning",
            f"kiln_failed_jobs >= {thresholds.failed_warning}",
            "5m",
            health.WARNING,
            f"{thresholds.failed_warning} or more failed jobs wait for an operator",
        ),
        _rule(
            "KilnFailedJobsCritical",
            f"kiln_failed_jobs > {thresholds.failed_critical}",
            "5m",
            health.CRITICAL,
            f"more than {thresholds.failed_critical} failed jobs wait for an operator",
        ),
    ]
    failed = f"sum by (name) (rate(celery_task_failed_total[{TASK_FAILURE_MINUTES}m]))"
    succeeded = f"sum by (name) (rate(celery_task_succeeded_total[{TASK_FAILURE_MINUTES}m]))"
    rules += [
        _rule(
            "KilnTaskFailureRate",
            # A task that fails every time still has its succeeded counter, at 0 (/metrics gives each task
            # every counter), so the sum below exists; without jobs it is 0 / 0, which compares false.
            f"{failed}\n/ (\n  {failed}\n  + {succeeded}\n)\n> {TASK_FAILURE_RATIO}",
            "1m",
            health.WARNING,
            f"{{{{ $labels.name }}}} failed {{{{ $value | humanizePercentage }}}} of its jobs in the last"
            f" {TASK_FAILURE_MINUTES} minutes",
        ),
        _rule(
            "KilnWorkerDown",
            # A worker answers through the broker: while that is down, KilnBrokerDown says it for them all.
            "celery_worker_up == 0 unless on () kiln_broker_up == 0",
            "2m",
            health.WARNING,
            "worker {{ $labels.hostname }} has not answered for 2 minutes",
        ),
    ]
    rules.append(
        _rule(
            "KilnScheduleLate",
            "kiln_schedule_late == 1",
            "1m",
            health.WARNING,
            "beat entry {{ $labels.schedule }} missed a run: not started within its grace",
        )
    )
    rules += [
        _rule(
            "KilnPoolDown",
            f'absent(kiln_workers{{pool="{pool}"}}) or kiln_workers{{pool="{pool}"}} == 0',
            "2m",
            health.CRITICAL,
            f"no worker of pool {pool} answers",
            pool=pool,
        )
        for pool in pools
    ]
    header = (
        "# Prometheus alert rules for Kiln, generated by `manage.py jobs prometheus-rules` from the same\n"
        "# thresholds as `manage.py jobs health` (KILN_QUEUES, KILN_QUEUE_WAITS, KILN_HEALTH_*; a beat entry's\n"
        '# lateness is judged by Kiln with KILN_SCHEDULE_GRACE). Scrape /metrics as job "kiln".\n'
    )
    document = {"groups": [{"name": "kiln", "rules": rules}]}
    return header + yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=120, allow_unicode=True)


class _RulesDumper(yaml.SafeDumper):
    """Writes an expression of several lines as a literal block, the way people write rule files."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_RulesDumper.add_representer(str, _text)
