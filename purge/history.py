"""A policy's history night by night: what each finished real run removed and how long it took, drawn as
charts on the policy's admin page."""

from __future__ import annotations

from django.utils import timezone

from config import charts
from config.charts import Chart, Line
from config.formatting import bytes_words, count_of, duration
from purge.models import PurgeRun, RetentionPolicy

RUNS_SHOWN = 90


def policy_runs(policy: RetentionPolicy, *, limit: int = RUNS_SHOWN) -> list[PurgeRun]:
    """The policy's last finished real runs, oldest first: dry runs remove nothing and skipped nights ran
    nothing."""
    runs = policy.runs.filter(
        dry_run=False, state=PurgeRun.State.DONE, started_at__isnull=False, finished_at__isnull=False
    ).order_by("-started_at")[:limit]
    return list(reversed(runs))


def _label(run: PurgeRun) -> str:
    started = timezone.localtime(run.started_at)
    return f"{started.day} {started:%b} {started:%H:%M}"


def policy_charts(policy: RetentionPolicy) -> list[Chart]:
    runs = policy_runs(policy)
    labels = [_label(run) for run in runs]
    files = policy.target_spec is not None and policy.target_spec.kind == "files"
    noun = "file" if files else "row"
    removed = charts.bar_chart(
        title=f"{noun.capitalize()}s removed per run",
        stacks=[Line(f"{noun}s removed", [float(run.removed) for run in runs])],
        labels=labels,
    )
    took = charts.bar_chart(
        title="Run duration",
        stacks=[Line("took", [(run.finished_at - run.started_at).total_seconds() for run in runs])],
        labels=labels,
        unit=charts.seconds_words,
    )
    total = sum(run.removed for run in runs)
    freed = sum(run.removed_bytes for run in runs)
    if not runs:
        note = "no real run has finished yet"
    else:
        note = f"the last {count_of(len(runs), 'finished run')}: {count_of(total, noun)} removed"
    if freed:
        note += f", {bytes_words(freed)} freed"
    if runs:
        longest = max((run.finished_at - run.started_at) for run in runs)
        note += f"; the longest took {duration(longest)}"
    return [
        Chart(f"{noun.capitalize()}s removed per run", removed, charts.legend([f"{noun}s removed"]), note),
        Chart("Run duration", took, charts.legend(["took"])),
    ]
