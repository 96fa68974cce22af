"""How much room do the metrics over time take? Rows and bytes per million jobs, and at steady state.

Counts are written per minute, per hour and for all time, per queue and task (metrics/), so their size
follows the minutes and the tasks, not the jobs: a minute with one job and a minute with a thousand take
the same few rows, plus a row for each bucket its times fell into. This writes what a million jobs leave
behind at a given rate (default the seeds' 500 per minute, over three tasks on two queues with waits and run
times spread over several buckets, 1 % failing under two exception types, and the minute's queue samples),
through the same Tally and upsert the history writer uses, one write per minute as the writer batches them,
then prints the rows and the table's bytes, on SQLite and on PostgreSQL when one answers on 127.0.0.1:5432.

Steady state: minutes are trimmed after 2 days and hours after 90, so a busy Kiln settles at 2,880 minutes
and 2,160 hours of rows whatever its rate; that figure is printed too.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.databases import child_run, scratch_databases  # noqa: E402 - after the path

TASKS = (
    ("high", "thumbnails.tasks.rendition_generate"),
    ("default", "reports.tasks.report_render"),
    ("default", "probe.count"),
)


def child(jobs: int, rate: int) -> None:
    """In a fresh process whose DATABASE_URL names the database: migrate, write, measure."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django.db import connection

    from metrics.models import Tally as Row
    from metrics.store import tally_write
    from metrics.tally import Tally, bucket_of

    call_command("migrate", verbosity=0)
    Row.objects.all().delete()
    randomness = random.Random(7)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    minutes = -(-jobs // rate)
    for minute in range(minutes):
        at = start + timedelta(minutes=minute)
        tally = Tally()
        for queue, task in TASKS:
            share = rate // len(TASKS)
            failed = sum(1 for _ in range(share) if randomness.random() < 0.01)
            for counter, value in (
                ("sent", share),
                ("received", share),
                ("started", share),
                ("succeeded", share - failed),
            ):
                tally.add(
                    counter, at=at, queue=queue, task_name=task, hostname=f"{queue}@host-a", value=value
                )
            for index in range(failed):
                exception = "OSError" if index % 2 else "ValueError"
                tally.add(
                    "failed", at=at, queue=queue, task_name=task, hostname=f"{queue}@host-a", label=exception
                )
            for kind, centre in (("wait", 0.05), ("run", 0.4)):
                for _ in range(share):
                    seconds = randomness.lognormvariate(0, 1) * centre
                    tally.add(
                        f"{kind}_bucket",
                        at=at,
                        queue=queue,
                        task_name=task,
                        hostname=f"{queue}@host-a",
                        label=str(bucket_of(seconds)),
                    )
                tally.add(
                    f"{kind}_seconds",
                    at=at,
                    queue=queue,
                    task_name=task,
                    hostname=f"{queue}@host-a",
                    value=share * centre,
                )
        for queue in ("high", "default"):
            for gauge in ("depth", "oldest_wait", "running", "workers", "processes"):
                tally.add(gauge, at=at, queue=queue, task_name="", value=randomness.randint(0, 20))
        tally_write(tally)
    rows = Row.objects.count()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size('metrics_tally')")
            size = cursor.fetchone()[0]
        else:
            cursor.execute("VACUUM")
            cursor.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE '%metrics_tally%'")
            size = cursor.fetchone()[0]
    per_minute = Row.objects.filter(span=60).count() / minutes
    per_hour = Row.objects.filter(span=3600).count() / max(minutes / 60, 1)
    steady_rows = per_minute * 2 * 24 * 60 + per_hour * 90 * 24
    steady_bytes = size / rows * steady_rows
    print(
        f"{connection.vendor:<10} {jobs:>9,} jobs at {rate}/min ({minutes:,} minutes): {rows:>9,} rows, "
        f"{size / 1e6:7.1f} MB = {size / jobs * 1e6 / 1e6:5.1f} MB per million jobs; "
        f"steady state (2 days of minutes, 90 days of hours): {steady_rows:,.0f} rows, about {steady_bytes / 1e6:.0f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=500, help="jobs per minute (the seeds' 500)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.jobs, args.rate)
        return 0
    status = 0
    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-rollups-") as tmp,
        scratch_databases("kiln_bench_rollups", Path(tmp)) as urls,
    ):
        for url in urls:
            status |= child_run(__file__, url, Path(tmp), "--jobs", str(args.jobs), "--rate", str(args.rate))
    return status


if __name__ == "__main__":
    sys.exit(main())
