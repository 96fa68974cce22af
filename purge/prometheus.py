"""The purges on /metrics: each policy's last finished real run, so a dashboard can chart the nights and a
rule can notice a policy that stopped finishing."""

from __future__ import annotations

from typing import Any

from django.db.models import Max
from prometheus_client.core import GaugeMetricFamily

from purge.models import PurgeRun, RetentionPolicy


class PurgeCollector:
    """One query for the policies and one for their last finished runs, at scrape time."""

    def collect(self) -> Any:
        finished = GaugeMetricFamily(
            "kiln_purge_last_run_timestamp_seconds",
            "when the policy's last real run finished (done or failed), Unix time",
            labels=["policy"],
        )
        removed = GaugeMetricFamily(
            "kiln_purge_last_run_removed",
            "rows or files the policy's last real run removed",
            labels=["policy"],
        )
        took = GaugeMetricFamily(
            "kiln_purge_last_run_duration_seconds",
            "how long the policy's last real run took",
            labels=["policy"],
        )
        failed = GaugeMetricFamily(
            "kiln_purge_last_run_failed", "1 when the policy's last real run failed", labels=["policy"]
        )
        enabled = GaugeMetricFamily(
            "kiln_purge_policy_enabled", "1 when the nightly purge runs the policy", labels=["policy"]
        )
        ended = (PurgeRun.State.DONE, PurgeRun.State.FAILED)
        latest = (
            PurgeRun.objects.filter(dry_run=False, state__in=ended, finished_at__isnull=False)
            .values("policy_id")
            .annotate(last=Max("id"))
        )
        runs = {
            run.policy_id: run
            for run in PurgeRun.objects.filter(id__in=[row["last"] for row in latest]).only(
                "policy_id", "state", "removed", "started_at", "finished_at"
            )
        }
        for policy in RetentionPolicy.objects.order_by("target").only("id", "target", "enabled"):
            enabled.add_metric([policy.target], 1 if policy.enabled else 0)
            run = runs.get(policy.id)
            if run is None:
                continue  # never finished: no sample rather than a zero that reads as "ran at 1970"
            finished.add_metric([policy.target], run.finished_at.timestamp())
            removed.add_metric([policy.target], run.removed)
            if run.started_at is not None:
                took.add_metric([policy.target], (run.finished_at - run.started_at).total_seconds())
            failed.add_metric([policy.target], 1 if run.state == PurgeRun.State.FAILED else 0)
        yield from (enabled, finished, removed, took, failed)
