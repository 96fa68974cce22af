"""Endpoints for machines: /healthz for load balancers and supervisors, /metrics for Prometheus."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.core import CollectorRegistry, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

from jobs import broker, health, selectors
from jobs.models import Alert, Job

# Upper bounds of the wait- and run-time buckets, in seconds (the time limits are 120 and 300 s).
BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HISTOGRAM_WINDOW = timedelta(hours=1)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Cheap, no login: is the database reachable, is the broker? 200 or 503, with a JSON body."""
    checks = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any database error means "not healthy", whatever the backend
        checks["database"] = f"error: {type(error).__name__}"
    if not broker.ping():
        checks["broker"] = "error: unreachable"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


def metrics_allowed(request: HttpRequest) -> bool:
    """The token, or a direct connection from an allowed address. Behind nginx every request comes from
    127.0.0.1, so a request that passed a proxy (it carries X-Forwarded-For) needs the token."""
    token = settings.KILN_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if (
        token
        and header.startswith("Bearer ")
        and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    ):
        return True
    if "X-Forwarded-For" in request.headers:
        return False
    return request.META.get("REMOTE_ADDR", "") in settings.KILN_METRICS_ALLOWED_IPS


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "metrics need a token or an allowed address\n", status=403, content_type="text/plain"
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KilnCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class KilnCollector:
    """Reads everything at scrape time: one snapshot, three aggregate queries."""

    def collect(self) -> Any:
        snap = selectors.snapshot_cached()
        yield from self._queues(snap)
        yield from self._workers(snap)
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
