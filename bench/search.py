"""Is the job history searched fast on 1,000,000 rows, in the admin and on the command line?

Seeds N jobs (default 1,000,000) like a busy week of Kiln: five tasks on both queues, mostly succeeded,
2.5 % failed with a traceback, a few revoked, cleared, retrying or still running; arguments like
[image_id] with ids up to 1,000,000, {"image_id": N, "force": true} and {"report_id": N, "format": "pdf"};
and the metrics' all-time rows the admin's filters read. On SQLite (a scratch file) and on PostgreSQL
when one answers on 127.0.0.1:5432 (a scratch database, kiln_search_bench, dropped after), each in a
fresh process, it times:

  search    selectors.jobs_search, the newest 50: an image id held by one job, a short value (12), a
            value every report job holds (pdf), task + state + a time range
  command   manage.py jobs search, printed to a buffer
  admin     the Jobs and Failed jobs pages through Django's test client as a superuser, with DEBUG off
            as in production: plain, with a search, with filters

each the median of five runs after one that warms the caches. Target: every one under 200 ms, the render
included: about where a person stops feeling that a page answers at once, and a search an operator can
repeat while narrowing it down. A time range in which nothing matches is printed without a target: it is
read whole (on SQLite row by row, PostgreSQL's statistics avoid it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_MS = 200
# Printed without a target: a time range in which nothing matches is read whole, on SQLite row by row.
UNBOUNDED = "search: unknown task + 7 days (no match)"
PG_DATABASE = "kiln_search_bench"
RENDITION = "thumbnails.tasks.rendition_generate"

SEED = 16
DAYS = 7

# (task, queue, weight, how its arguments look). reports.tasks.report_export stands for a domain task that
# takes keyword arguments; Kiln's own tasks take positional ids.
TASKS = (
    ("thumbnails.tasks.rendition_generate", "high", 80, "image"),
    ("thumbnails.tasks.rendition_generate", "high", 6, "image-kwargs"),
    ("reports.tasks.report_export", "default", 8, "report-kwargs"),
    ("purge.tasks.purge_run", "default", 2, "run"),
    ("thumbnails.tasks.pending_sweep", "default", 2, "none"),
    ("jobs.tasks.alerts_check", "default", 2, "none"),
)
EXCEPTIONS = (
    ("OSError", "[Errno 5] Input/output error: '/srv/kiln/media/originals/{a:02x}/{b:02x}/{n}.jpg'", 4),
    ("OperationalError", "server closed the connection unexpectedly", 4),
    ("TimeLimitExceeded", "TimeLimitExceeded(120,)", 1),
    ("ValueError", "cannot write mode P as JPEG ({n})", 1),
)
TRACEBACK = """Traceback (most recent call last):
  File "/srv/kiln/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
                 ^^^^^^^^^^^^^^^^^^^^
  File "/srv/kiln/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 736, in __protected_call__
    return self.run(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/kiln/thumbnails/tasks.py", line 33, in rendition_generate_task
    return services.rendition_generate(image_id=image_id, force=force)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/kiln/thumbnails/services.py", line 131, in rendition_generate
    source = storage.open(image.original.name)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/kiln/.venv/lib/python3.11/site-packages/django/core/files/storage/base.py", line 22, in open
    return self._open(name, mode)
           ^^^^^^^^^^^^^^^^^^^^^^
{exception}: {message}
"""
COLUMNS = (
    "task_id",
    "task_name",
    "queue",
    "args",
    "kwargs",
    "argument_values",
    "args_truncated",
    "state",
    "progress",
    "attempts",
    "worker",
    "published_at",
    "started_at",
    "finished_at",
    "exception_type",
    "exception_message",
    "traceback",
    "retried_at",
)


def job_rows(rows: int, now: datetime) -> Iterator[tuple]:
    """The same `rows` jobs for a given `now`, oldest first, as tuples in COLUMNS' order (JSON as text,
    times as aware datetimes)."""
    rng = random.Random(SEED)
    kinds = [task for task in TASKS for _ in range(task[2])]
    failures = [failure for failure in EXCEPTIONS for _ in range(failure[2])]
    start = now - timedelta(days=DAYS)
    step_us = DAYS * 86_400_000_000 // rows
    randint, random_float, choice, bits = rng.randint, rng.random, rng.choice, rng.getrandbits
    for index in range(rows):
        task, queue, _weight, shape = choice(kinds)
        number = randint(1, 1_000_000)
        # JSON as json.dumps writes it and argument_values as jobs/arguments.py does (checked after seeding).
        args, kwargs, values = "[]", "{}", ""
        if shape == "image":
            args, values = f"[{number}]", f"\n{number}\n"
        elif shape == "image-kwargs":
            kwargs, values = f'{{"image_id": {number}, "force": true}}', f"\n{number}\ntrue\n"
        elif shape == "report-kwargs":
            kwargs, values = f'{{"report_id": {number}, "format": "pdf"}}', f'\n{number}\n"pdf"\n'
        elif shape == "run":
            args, values = f"[{number % 20_000 + 1}]", f"\n{number % 20_000 + 1}\n"
        published = start + timedelta(microseconds=step_us * index + randint(0, 50_000))
        started = published + timedelta(microseconds=randint(5_000, 2_000_000))
        finished = started + timedelta(microseconds=randint(40_000, 3_000_000))
        roll = random_float()
        state, attempts, exception, message, traceback, retried = "succeeded", 1, "", "", "", None
        if rows - index <= 200:  # the newest jobs are still waiting or running
            state, finished = ("queued", None) if roll < 0.5 else ("started", None)
            if state == "queued":
                started = None
        elif roll < 0.025:
            state = "failed"
            exception, template, _weight = choice(failures)
            message = template.format(a=number % 256, b=number // 256 % 256, n=number)
            traceback = TRACEBACK.format(exception=exception, message=message)
            attempts = 4 if exception in ("OSError", "OperationalError") else 1
            if roll < 0.0025:
                retried = finished + timedelta(minutes=10)
        elif roll < 0.030:
            state, message, started = "revoked", "expired before it ran", None
        elif roll < 0.033:
            state, started = "cleared", None
        elif roll < 0.035:
            state, attempts, exception, finished = "retrying", 2, "OperationalError", None
            message = "server closed the connection unexpectedly"
        rank = 0 if state in ("queued", "retrying") else 1 if state == "started" else 3
        hexa = f"{bits(128):032x}"
        yield (
            f"{hexa[:8]}-{hexa[8:12]}-4{hexa[13:16]}-a{hexa[17:20]}-{hexa[20:]}",
            task,
            queue,
            args,
            kwargs,
            values,
            False,
            state,
            attempts * 10 + rank,
            attempts,
            f"{queue}@kiln-{number % 3 + 1}" if started else "",
            published,
            started,
            finished,
            exception,
            message,
            traceback,
            retried,
        )


def seed(rows: int, now: datetime) -> None:
    """Insert the jobs the fastest way each database offers (COPY on PostgreSQL, executemany on SQLite),
    with the table's secondary indexes dropped meanwhile and built again after, as the migrations made them."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT index.relname, pg_get_indexdef(index.oid) FROM pg_index "
                "JOIN pg_class index ON index.oid = pg_index.indexrelid "
                "WHERE pg_index.indrelid = 'jobs_job'::regclass "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = pg_index.indexrelid)"
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'jobs_job' AND sql IS NOT NULL"
            )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    if connection.vendor == "postgresql":
        copy_sql = f"COPY jobs_job ({', '.join(COLUMNS)}) FROM STDIN"
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
            for row in job_rows(rows, now):
                copy.write_row(row)
    else:
        insert = f"INSERT INTO jobs_job ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        times = [COLUMNS.index(name) for name in ("published_at", "started_at", "finished_at", "retried_at")]

        def stored(row: tuple) -> tuple:
            # What Django's SQLite backend stores for an aware datetime: naive UTC text.
            values = list(row)
            for position in times:
                if values[position] is not None:
                    values[position] = values[position].replace(tzinfo=None).isoformat(" ")
            return tuple(values)

        batch: list[tuple] = []
        for row in job_rows(rows, now):
            batch.append(stored(row))
            if len(batch) == 50_000:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany(insert, batch)
                batch = []
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(insert, batch)
    with connection.cursor() as cursor:
        for _name, definition in indexes:
            cursor.execute(definition)
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE jobs_job")  # what autovacuum does after a bulk load


def tallies_seed(now: datetime) -> None:
    """What the metrics would have counted for these jobs: the all-time rows the admin's filters read."""
    from metrics.store import tally_write
    from metrics.tally import Tally

    tally = Tally()
    for task, queue, _weight, _shape in TASKS:
        for host in range(1, 4):
            hostname = f"{queue}@kiln-{host}"
            tally.job_counted("succeeded", at=now, queue=queue, task_name=task, hostname=hostname, run=0.5)
            for exception, _message, _weight in EXCEPTIONS:
                tally.job_counted(
                    "failed", at=now, queue=queue, task_name=task, hostname=hostname, exception=exception
                )
    tally_write(tally)


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median of `repeat` runs after one to warm the caches, in milliseconds, and the last result."""
    result = action()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def child(rows: int, repeat: int) -> None:
    """Runs in its own process, on the database DATABASE_URL names: migrate, seed, measure, print JSON."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from jobs import selectors
    from jobs.arguments import argument_values
    from jobs.models import Job

    # Production serves pages with DEBUG off: templates are not in debug mode and no query is recorded.
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    now = utc_now()
    began = time.perf_counter()
    seed(rows, now)
    tallies_seed(now)
    seeded = time.perf_counter() - began
    sample = Job.objects.filter(id__in=list(range(1, rows + 1, max(rows // 1000, 1))))
    for args, kwargs, values in sample.values_list("args", "kwargs", "argument_values"):
        # Line by line: PostgreSQL's jsonb hands keys back in its own order.
        assert sorted(values.split()) == sorted(argument_values(args, kwargs).split()), (args, kwargs, values)

    # An image id of a job in the middle of the week: a value held by a handful of jobs.
    image_args = Job.objects.filter(task_name=RENDITION, id__gt=rows // 2, kwargs={}).values_list(
        "args", flat=True
    )
    image_id = str(image_args.order_by("id").first()[0])
    middle = now - timedelta(days=DAYS / 2)
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def page(url: str) -> Callable[[], int]:
        def load() -> int:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response.content.count(b'name="_selected_action"')  # a checkbox per row

        return load

    def search(**filters: Any) -> Callable[[], int]:
        return lambda: len(list(selectors.jobs_search(**filters)[:50]))

    def command(*arguments: str) -> Callable[[], int]:
        def run() -> int:
            out = io.StringIO()
            call_command("jobs", "search", *arguments, stdout=out)
            return sum(1 for line in out.getvalue().splitlines() if line.split()[0].isdigit())

        return run

    since = middle.isoformat()
    day = (timezone.localdate(middle)).isoformat()
    until = (middle + timedelta(hours=1)).isoformat()
    measures = {
        f"search: argument {image_id} (an image id)": search(argument=image_id),
        "search: argument 12 (a short value)": search(argument="12"),
        "search: argument pdf (every report job)": search(argument="pdf"),
        "search: task + failed + last 24 h": search(
            task=RENDITION, state="failed", since=now - timedelta(days=1)
        ),
        "search: task + succeeded + one hour": search(
            task=RENDITION, state="succeeded", since=middle, until=middle + timedelta(hours=1)
        ),
        UNBOUNDED: search(task="thumbnails.tasks.no_such_task", since=now - timedelta(days=7)),
        f"command: jobs search --arg {image_id}": command("--arg", image_id),
        "command: --task --state --since --until": command(
            "--task", RENDITION, "--state", "succeeded", "--since", since, "--until", until
        ),
        "admin: Jobs": page("/admin/jobs/job/"),
        f"admin: Jobs, search {image_id}": page(f"/admin/jobs/job/?q={image_id}"),
        "admin: Jobs, search 12": page("/admin/jobs/job/?q=12"),
        "admin: Jobs, search pdf": page("/admin/jobs/job/?q=pdf"),
        "admin: Jobs, task + failed + 24 h": page(
            f"/admin/jobs/job/?task_name={RENDITION}&state=failed&published=24h"
        ),
        "admin: Jobs, task + succeeded, a day back": page(
            f"/admin/jobs/job/?task_name={RENDITION}&state=succeeded&published={day}"
        ),
        "admin: Jobs, search error words": page("/admin/jobs/job/?q=input/output"),
        "admin: Failed jobs": page("/admin/jobs/failedjob/"),
        "admin: Failed jobs, OSError + 7 d": page(
            "/admin/jobs/failedjob/?exception_type=OSError&finished=7d"
        ),
        "admin: Failed jobs, search error words": page("/admin/jobs/failedjob/?q=closed+the+connection"),
    }
    results = {}
    for name, action in measures.items():
        milliseconds, found = timed(action, repeat)
        results[name] = {"ms": milliseconds, "found": found}
    print(json.dumps({"vendor": connection.vendor, "seconds_seeding": seeded, "results": results}))


def postgres_url(name: str) -> str | None:
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 5432)) != 0:
            return None
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def postgres_drop(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")


def measure(database: str, url: str, var_dir: Path, rows: int, repeat: int) -> dict:
    var_dir.mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "true",  # the settings' development defaults (no SECRET_KEY to set); pages run with it off
        "KILN_VAR_DIR": str(var_dir),
        "DATABASE_URL": url,
    }
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(rows), str(repeat)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{database} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs in the history (1,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each, after a warm-up (5)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], help="only this database")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]))
        return 0

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-search-") as tmp:
        if args.database != "postgresql":
            url = f"sqlite:///{Path(tmp) / 'search.sqlite3'}"
            results["SQLite"] = measure("sqlite", url, Path(tmp) / "sqlite", args.rows, args.repeat)
        url = None if args.database == "sqlite" else postgres_url(PG_DATABASE)
        if url:
            try:
                results["PostgreSQL"] = measure("postgresql", url, Path(tmp) / "pg", args.rows, args.repeat)
            finally:
                postgres_drop(PG_DATABASE)
        elif args.database != "sqlite":
            print("no PostgreSQL on 127.0.0.1:5432: SQLite only")

    names = list(next(iter(results.values()))["results"])
    print(f"\njob history search, {args.rows:,} jobs, median of {args.repeat} runs after a warm-up (ms)")
    print("seeding: " + ", ".join(f"{db} {r['seconds_seeding']:.0f} s" for db, r in results.items()))
    header = f"{'':<44}" + "".join(f"{db:>12}{'rows':>6}" for db in results) + f"  target {TARGET_MS} ms"
    print(header)
    missed = []
    for name in names:
        late = [db for db, result in results.items() if result["results"][name]["ms"] > TARGET_MS]
        if name == UNBOUNDED:
            late = []
        missed += [f"{name} on {db}" for db in late]
        figures = "".join(
            f"{result['results'][name]['ms']:>12.0f}{result['results'][name]['found']:>6}"
            for result in results.values()
        )
        verdict = "printed" if name == UNBOUNDED else "missed" if late else "met"
        print(f"{name:<44}{figures}  {verdict}")
    print(f"\n{'every target met' if not missed else 'MISSED: ' + '; '.join(missed)}")
    return 0 if not missed else 1


def utc_now() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main())
