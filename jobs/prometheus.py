"""Prometheus: the collector behind /metrics, and the alert rules generated from the same thresholds as
`jobs health` and the alert mails.

`manage.py jobs prometheus-rules` prints the rules; deploy/prometheus/kiln-alerts.yml is its output for the
default settings (a test keeps the two equal).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from jobs import health, selectors
from jobs.health import Thresholds
from jobs.models import Alert, Job

# Upper bounds of the wait- and run-time buckets, in seconds (the time limits are 120 and 300 s).
BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HISTOGRAM_WINDOW = timedelta(hours=1)


class KilnCollector:
    """Reads everything at scrape time: one snapshot, three aggregate queries."""

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

    def _queues(self, snap: selectors.Snapshot) -> Any:
        up = GaugeMetricFamily("kiln_broker_up", "1 when the broker answers")
        up.add_metric([], 1 if snap.broker_ok else 0)
        yield up
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


def _rule(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
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
    ]
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
        )
        for pool in pools
    ]
    header = (
        "# Prometheus alert rules for Kiln, generated by `manage.py jobs prometheus-rules` from the same\n"
        "# thresholds as `manage.py jobs health` (KILN_QUEUES, KILN_QUEUE_WAITS, KILN_HEALTH_*; a beat entry's\n"
        '# lateness is judged by Kiln with KILN_SCHEDULE_GRACE). Scrape /metrics as job "kiln".\n'
    )
    document = {"groups": [{"name": "kiln", "rules": rules}]}
    return header + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)
