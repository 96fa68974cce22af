"""Does Kiln's batched purge keep locks short and memory flat, at the cost of little speed?

For N expired rows (default 1,000,000) of ReportHistoryRecord, in two variants (plain, and with a post_delete
receiver connected), on SQLite and on PostgreSQL when one answers on 127.0.0.1:5432, each method runs in a
fresh process on freshly inserted rows and reports its wall time, the peak memory (max RSS) of that process
and the longest single transaction it held, and the longest wait of another writer that writes a row every
50 ms meanwhile (how long the purge keeps an upload or a job's status update out):

  kiln    a retention-policy run (purge.services.purge_run_execute): batches of 5,000 by primary key, one
          short transaction each, progress committed with each batch
  naive   ReportHistoryRecord.objects.filter(expired).delete(): one transaction for everything
  raw     one DELETE statement (plain variant only): the floor, holding its lock for the whole run

Targets, plain: kiln within 2x of raw, longest transaction under 1 s. With the receiver: every signal sent,
kiln no slower than naive, peak memory under 150 MB, longest transaction under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_RAW_RATIO = 2.0
TARGET_LONGEST_TXN = 1.0
TARGET_PEAK_MB = 150.0


def child(method: str, variant: str, rows: int) -> None:
    """Runs in its own process: insert the rows, purge them one way, print one JSON line."""
    import resource
    from datetime import timedelta

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections, transaction
    from django.db.models.signals import post_delete
    from django.utils import timezone

    from purge import services
    from purge.models import PurgeRun, RetentionPolicy
    from reports.models import Report, ReportHistoryRecord

    call_command("migrate", verbosity=0)
    ReportHistoryRecord.objects.all().delete()
    report = Report.objects.get_or_create(name="bench")[0]
    old = timezone.now() - timedelta(days=400)
    table = ReportHistoryRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (report_id, rendered_by_id, rendered_at) "
                "SELECT %s, NULL, %s FROM generate_series(1, %s)",
                [report.pk, old, rows],
            )
            cursor.execute(f"VACUUM ANALYZE {table}") if connection.get_autocommit() else None
        else:
            cursor.execute(
                f"INSERT INTO {table} (report_id, rendered_by_id, rendered_at) "
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %s) "
                "SELECT %s, NULL, %s FROM n",
                [rows, report.pk, old],
            )

    signals = 0
    if variant == "receiver":

        def count(sender, **kwargs) -> None:
            nonlocal signals
            signals += 1

        post_delete.connect(count, sender=ReportHistoryRecord, weak=False)

    # Every transaction's length: from autocommit off (BEGIN) to autocommit back on (after COMMIT).
    longest = 0.0
    opened: list[float] = []
    wrapper_class = type(connections["default"])
    original = wrapper_class.set_autocommit

    def timed(self, autocommit, *args, **kwargs):
        nonlocal longest
        if not autocommit:
            opened.append(time.perf_counter())
        elif opened:
            longest = max(longest, time.perf_counter() - opened.pop())
        return original(self, autocommit, *args, **kwargs)

    wrapper_class.set_autocommit = timed

    # Another writer (an upload, a job's status) while the purge runs: a separate process that writes a
    # row every 50 ms. Its longest wait says how long the purge keeps everyone else out.
    stop_file = Path(os.environ["KILN_VAR_DIR"]) / "writer.stop"
    stop_file.unlink(missing_ok=True)
    writer = subprocess.Popen(
        [sys.executable, __file__, "--writer", str(report.pk), str(stop_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    while not stop_file.with_suffix(".ready").exists():
        time.sleep(0.05)
    cutoff = timezone.now() - timedelta(days=90)
    started = time.perf_counter()
    if method == "kiln":
        policy = RetentionPolicy.objects.get(target="report_history")
        run = PurgeRun.objects.create(policy=policy, trigger=PurgeRun.Trigger.COMMAND)
        state = services.purge_run_execute(run_id=run.pk, budget_seconds=3600)
        assert state is services.RunOutcome.DONE, state
    elif method == "naive":
        ReportHistoryRecord.objects.filter(rendered_at__lt=cutoff).delete()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE rendered_at < %s", [cutoff])
    seconds = time.perf_counter() - started
    stop_file.touch()
    writer_wait = json.loads(writer.communicate(timeout=120)[0].strip().splitlines()[-1])["max_wait"]
    wrapper_class.set_autocommit = original
    left = ReportHistoryRecord.objects.count()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_mb,
                "longest": longest,
                "writer_wait": writer_wait,
                "signals": signals,
                "left": left,
            }
        )
    )


def other_writer(report_id: int, stop_file: Path) -> None:
    """Runs in its own process: update one row every 50 ms until told to stop; print the longest wait."""
    import django

    django.setup()
    from reports.models import Report

    waits = []
    Report.objects.filter(pk=report_id).update(name="bench")  # connected and warm before the purge starts
    stop_file.with_suffix(".ready").touch()
    while not stop_file.exists():
        began = time.perf_counter()
        Report.objects.filter(pk=report_id).update(name="bench")
        waits.append(time.perf_counter() - began)
        time.sleep(0.05)
    print(json.dumps({"max_wait": max(waits, default=0.0), "writes": len(waits)}))


def postgres_url() -> str | None:
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 5432)) != 0:
            return None
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'kiln_bench'").fetchone():
            conn.execute("CREATE DATABASE kiln_bench")
    return "postgres://postgres@127.0.0.1:5432/kiln_bench"


def measure(database: str, url: str | None, var_dir: Path, method: str, variant: str, rows: int) -> dict:
    var_dir.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "KILN_VAR_DIR": str(var_dir)}
    environ.pop("DATABASE_URL", None)
    if url:
        environ["DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, __file__, "--child", method, variant, str(rows)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{database} {variant} {method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="expired rows per measurement (1,000,000)"
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], help="only this database")
    parser.add_argument("--variant", choices=["plain", "receiver"], help="only this variant")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--writer", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        other_writer(int(args.writer[0]), Path(args.writer[1]))
        return 0
    if args.child:
        method, variant, rows = args.child
        child(method, variant, int(rows))
        return 0

    sys.path.insert(0, str(REPO))
    databases: list[tuple[str, str | None]] = [("sqlite", None)]
    url = postgres_url()
    if args.database == "sqlite":
        url = None
    if args.database == "postgresql":
        databases = []
    if url:
        databases.append(("postgresql", url))
    else:
        print("no PostgreSQL on 127.0.0.1:5432: SQLite only")
    ok = True
    with tempfile.TemporaryDirectory(prefix="kiln-bench-purge-") as tmp:
        for database, db_url in databases:
            for variant, methods in (("plain", ("kiln", "naive", "raw")), ("receiver", ("kiln", "naive"))):
                if args.variant and variant != args.variant:
                    continue
                print(f"\n{database}, {variant}, {args.rows:,} expired rows")
                print(
                    f"{'method':<8}{'seconds':>9}{'peak MB':>9}{'longest txn s':>15}"
                    f"{'other writer s':>16}{'signals':>11}"
                )
                results = {}
                for method in methods:
                    var_dir = Path(tmp) / f"{database}-{variant}-{method}"
                    r = results[method] = measure(database, db_url, var_dir, method, variant, args.rows)
                    assert r["left"] == 0, f"{method} left {r['left']} rows"
                    print(
                        f"{method:<8}{r['seconds']:>9.2f}{r['peak_mb']:>9.0f}{r['longest']:>15.3f}"
                        f"{r['writer_wait']:>16.3f}{r['signals']:>11,}"
                    )
                kiln = results["kiln"]
                checks = [
                    (f"longest transaction < {TARGET_LONGEST_TXN:g} s", kiln["longest"] < TARGET_LONGEST_TXN)
                ]
                if variant == "plain":
                    ratio = kiln["seconds"] / results["raw"]["seconds"]
                    checks.append(
                        (f"kiln/raw {ratio:.2f}x <= {TARGET_RAW_RATIO:g}x", ratio <= TARGET_RAW_RATIO)
                    )
                else:
                    ratio = results["naive"]["seconds"] / kiln["seconds"]
                    checks += [
                        (f"every signal sent ({kiln['signals']:,})", kiln["signals"] == args.rows),
                        (f"naive/kiln {ratio:.2f}x >= 1x (stretch 1.5x)", ratio >= 1.0),
                        (
                            f"peak {kiln['peak_mb']:.0f} MB < {TARGET_PEAK_MB:g} MB",
                            kiln["peak_mb"] < TARGET_PEAK_MB,
                        ),
                    ]
                for label, met in checks:
                    print(f"  target {label}: {'met' if met else 'MISSED'}")
                    ok &= met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
