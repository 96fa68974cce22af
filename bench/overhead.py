"""What does Kiln's job history cost a worker? Throughput with history on against history off.

Starts a private redis-server and a migrated SQLite database (the embedded default), then, for no-op jobs
and for 10 ms jobs, runs worker-default exactly as deploy/supervisor/kiln.conf starts it, alternately with
KILN_JOB_HISTORY=false and =true, on the same preloaded backlog. Throughput is jobs / (last finish - first
finish) as the jobs themselves stamp it, so worker start-up is not counted. Each variant runs `--rounds`
times, interleaved, and the best round of each counts: the ratio compares runs made in the same minute
on the same machine.

With history on, every job's record is checked at the end: all of them must be `succeeded`.

Targets: 10 ms jobs at >= 0.9 of the throughput without history; no-op jobs printed (stretch >= 0.7).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tests.support.probe_tasks import COUNT_KEY
from tests.support.processes import RedisServer, running_workers, stack_environment, start_redis, wait_for
from tests.support.stack import run_manage

TARGET_10MS = 0.9
STRETCH_NOOP = 0.7


def publish(server: RedisServer, environ: dict[str, str], jobs: int, sleep: float) -> None:
    """Publish through Kiln's own app in a Kiln process with history as the variant has it (the queued
    records are part of what history costs, though not of the worker's throughput)."""
    code = (
        "from config.celery import app\n"
        "from jobs.history import recorder\n"
        f"for _ in range({jobs}):\n"
        f"    app.send_task('probe.count', args=[{sleep}], queue='default', ignore_result=True)\n"
        "recorder.flush()\n"
    )
    result = run_manage(environ, "shell", "-c", code, timeout=600)
    assert result.returncode == 0, result.stderr


def one_round(server: RedisServer, environ: dict[str, str], jobs: int, sleep: float) -> float:
    client = server.client()
    client.delete(COUNT_KEY, f"{COUNT_KEY}:first", f"{COUNT_KEY}:last")
    publish(server, environ, jobs, sleep)
    with running_workers(("worker-default", environ)):
        wait_for(
            lambda: int(client.get(COUNT_KEY) or 0) >= jobs,
            timeout=600,
            interval=0.2,
            what=f"{jobs} jobs to finish",
        )
    first, last = float(client.get(f"{COUNT_KEY}:first")), float(client.get(f"{COUNT_KEY}:last"))
    return (jobs - 1) / (last - first)


def history_check(environ: dict[str, str], expected: int) -> None:
    code = (
        "from jobs.models import Job\n"
        "print(Job.objects.filter(task_name='probe.count', state='succeeded').count(), Job.objects.filter(task_name='probe.count').count())\n"
    )
    out = run_manage(environ, "shell", "-c", code).stdout.strip().splitlines()[-1]
    succeeded, total = map(int, out.split())
    assert succeeded == total == expected, (
        f"history holds {succeeded} succeeded of {total}, expected {expected}"
    )
    run_manage(environ, "shell", "-c", "from jobs.models import Job; Job.objects.all().delete()")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--noop-jobs", type=int, default=3000)
    parser.add_argument("--sleep-jobs", type=int, default=1000, help="10 ms jobs per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        workdir = Path(tmp)
        server = start_redis(workdir / "redis")
        try:
            base = stack_environment(workdir / "var", server.url)
            migrated = run_manage(base, "migrate", "--verbosity=0")
            assert migrated.returncode == 0, migrated.stderr
            variants = {
                "off": {**base, "KILN_JOB_HISTORY": "false"},
                "on": {**base, "KILN_JOB_HISTORY": "true"},
            }
            results: dict[tuple[str, str], float] = {}
            for kind, jobs, sleep in (("no-op", args.noop_jobs, 0.0), ("10 ms", args.sleep_jobs, 0.01)):
                for round_number in range(args.rounds):
                    for name, environ in variants.items():
                        rate = one_round(server, environ, jobs, sleep)
                        print(
                            f"  {kind:<6} history {name:<3} round {round_number + 1}: {rate:7.1f} jobs/s",
                            flush=True,
                        )
                        results[(kind, name)] = max(results.get((kind, name), 0.0), rate)
                        if name == "on":
                            history_check(environ, jobs)
        finally:
            server.stop()

    concurrency = base["KILN_DEFAULT_CONCURRENCY"]
    print()
    print(
        f"worker-default (kiln.conf, {concurrency} processes), SQLite job history, best of {args.rounds} rounds"
    )
    print(f"{'jobs':<8}{'history off':>14}{'history on':>14}{'on / off':>10}  target")
    ratios = {}
    for kind, target in (("no-op", f">= {STRETCH_NOOP} (stretch, printed)"), ("10 ms", f">= {TARGET_10MS}")):
        off, on = results[(kind, "off")], results[(kind, "on")]
        ratios[kind] = on / off
        print(f"{kind:<8}{off:>11.1f}/s{on:>11.1f}/s{ratios[kind]:>10.2f}  {target}")
    met = ratios["10 ms"] >= TARGET_10MS
    print(
        f"\n10 ms target {'met' if met else 'MISSED'}; no-op stretch {'met' if ratios['no-op'] >= STRETCH_NOOP else 'missed'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
