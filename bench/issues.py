"""How fast is the issues list on a big failed list? The GROUP BY behind /admin/jobs/issues/ and `jobs issues`.

Writes N failed jobs (default 100,000) that an operator has not dealt with, spread over a few dozen issues
of very different sizes (one issue of a third of them, a long tail of small ones), with tracebacks of the
usual few kilobytes, plus as many succeeded jobs and a few thousand failed jobs already retried, which the
list must skip. Then times, best of five after one cold run: the issues list (`selectors.issues()`: one
GROUP BY and one query for the samples), the biggest issue's page (`selectors.issue()` and its latest 50
jobs) and its retry preview; and prints the query plan of the GROUP BY. On SQLite, and on PostgreSQL when
one answers on 127.0.0.1:5432. No ANALYZE is run: the planner sees the tables as a fresh server would.

Target: the issues list under 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.databases import child_run, scratch_databases  # noqa: E402 - after the path

TARGET_LIST_SECONDS = 1.0
ISSUES = 40
BATCH = 5000

# A traceback of the usual shape: Celery's frames, Kiln's, then a library's.
TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "{REPO}/.venv/lib/python3.11/site-packages/celery/app/trace.py", line {450 + n}, in trace_task\n'
        "    R = retval = fun(*args, **kwargs)\n"
        "                 ^^^^^^^^^^^^^^^^^^^^\n"
        for n in range(12)
    )
    + '  File "{repo}/thumbnails/services.py", line 120, in {function}\n'
    "    rendition = imaging.render_image(source, specs)\n"
    + '  File "{repo}/.venv/lib/python3.11/site-packages/PIL/Image.py", line 3280, in open\n'
    "    raise UnidentifiedImageError(msg)\n"
    "{exception}: {message}\n"
)


def child(failed: int) -> None:
    """In a fresh process whose DATABASE_URL names the database: migrate, write, time."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from datetime import UTC, datetime, timedelta

    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import selectors
    from jobs.issues import fingerprint
    from jobs.models import Job

    call_command("migrate", verbosity=0)
    Job.objects.all().delete()
    randomness = random.Random(16)
    now = datetime.now(UTC)
    # Issue k holds about a share of 1/(k+1) of the jobs: one big issue, a long tail.
    weights = [1 / (k + 1) for k in range(ISSUES)]
    rows = []

    def flush() -> None:
        Job.objects.bulk_create(rows)
        rows.clear()

    for n in range(failed + failed // 20):
        k = randomness.choices(range(ISSUES), weights)[0]
        task, exception = f"thumbnails.task_{k % 7}", ("ValueError", "OSError", "KeyError")[k % 3]
        # Words, not a number, tell the issues apart: numbers are what the fingerprint leaves out.
        message = f"image {n} failed in step {'abcdefghijklmnopqrstuvwxyz'[k % 26] * (1 + k // 26)}"
        traceback = TRACEBACK.format(
            repo=REPO, function=f"step_{k % 5}", exception=exception, message=message
        ) + ("x" * randomness.randint(0, 2000))
        rows.append(
            Job(
                task_id=f"f-{n}",
                task_name=task,
                queue=("high", "default")[k % 2 if n % 10 else 1 - k % 2],
                state=Job.State.FAILED,
                args=[n],
                finished_at=now - timedelta(seconds=randomness.randint(0, 7 * 86400)),
                exception_type=exception,
                exception_message=message,
                traceback=traceback,
                fingerprint=fingerprint(task, exception, message, traceback),
                # One in 21 already retried: in the table, not in the list.
                retried_at=now if n >= failed else None,
            )
        )
        rows.append(Job(task_id=f"s-{n}", task_name=task, queue="high", state=Job.State.SUCCEEDED))
        if len(rows) >= BATCH:
            flush()
    flush()
    assert selectors.failed_jobs().count() == failed

    def best(call) -> tuple[float, float]:
        started = time.perf_counter()
        call()
        cold = time.perf_counter() - started
        times = []
        for _ in range(5):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return cold, min(times)

    issues = selectors.issues()
    biggest = max(issues, key=lambda issue: issue.count)
    timings = {
        "issues list": best(lambda: [issue.title for issue in selectors.issues()]),
        "biggest issue": best(
            lambda: (
                selectors.issue(biggest.fingerprint).sample.traceback,
                list(selectors.issue_jobs(biggest.fingerprint).order_by("-finished_at")[:50]),
            )
        ),
        "retry preview": best(lambda: selectors.issue_retry_preview(biggest.fingerprint)),
    }
    print(
        f"{connection.vendor}: {failed:,} failed jobs in {len(issues)} issues "
        f"(the biggest {biggest.count:,}), {Job.objects.count():,} rows in all"
    )
    for name, (cold, warm) in timings.items():
        print(f"  {name:<14} {warm * 1000:8.1f} ms (first run {cold * 1000:.1f} ms)")
    with CaptureQueriesContext(connection) as queries:
        selectors.issues()
    grouped = queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + grouped)
        print("  plan of the GROUP BY:", " | ".join(str(row[-1]).strip() for row in cursor.fetchall()))
    if timings["issues list"][1] > TARGET_LIST_SECONDS:
        print(f"  MISSED: the issues list took over {TARGET_LIST_SECONDS} s")
        sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--failed", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.failed)
        return 0
    status = 0
    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-issues-") as tmp,
        scratch_databases("kiln_bench_issues", Path(tmp)) as urls,
    ):
        for url in urls:
            status |= child_run(__file__, url, Path(tmp), "--failed", str(args.failed))
    return status


if __name__ == "__main__":
    sys.exit(main())
