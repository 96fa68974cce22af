"""Does a saturated `default` pool delay thumbnails? Kiln's two pools against one shared worker.

Starts a private redis-server and, in turn:
  isolated  worker-high and worker-default exactly as deploy/supervisor/kiln.conf runs them;
  shared    one worker consuming `high,default` with as many processes as both pools together at peak.
Each run saturates `default` with slow jobs, then sends a steady stream of short `high` jobs and
measures each one's wait (publish -> start). Prints p50/p99 of both runs side by side and their ratio:
both runs share one machine and one minute, so the ratio holds where absolute times drift.

Targets: isolated p99 under 50 ms with `default` saturated, and at least 20x better than shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tests.support.broker import Probe, empty_broker
from tests.support.processes import (
    RedisServer,
    program_command,
    running_workers,
    stack_environment,
    start_redis,
    wait_for,
)

TARGET_P99_SECONDS = 0.050
TARGET_RATIO = 20.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(probe: Probe, default_slots: int, args: argparse.Namespace) -> list[float]:
    """Saturate `default`, stream short `high` jobs, return their waits in seconds."""
    # Enough slow jobs to keep every slot busy for the whole stream, with more queued behind.
    stream_seconds = args.high_jobs / args.rate
    slow_jobs = default_slots * (int(stream_seconds / args.slow_seconds) + 3)
    for n in range(slow_jobs):
        probe.send(f"slow-{n}", queue="default", sleep=args.slow_seconds)
    wait_for(
        lambda: sum(r["key"].startswith("slow-") for r in probe.records()) >= default_slots,
        timeout=30,
        what=f"{default_slots} slow jobs to occupy every default slot",
    )
    for n in range(args.high_jobs):
        probe.send(f"fast-{n}", queue="high")
        time.sleep(1 / args.rate)
    wait_for(
        lambda: sum(r["key"].startswith("fast-") for r in probe.records()) == args.high_jobs,
        timeout=120,
        what="every high job to start",
    )
    return [r["started_at"] - r["published_at"] for r in probe.records() if r["key"].startswith("fast-")]


def run(
    label: str, server: RedisServer, workdir: Path, specs: list[tuple], default_slots: int, args
) -> list[float]:
    empty_broker(server)
    probe = Probe(server)
    try:
        with running_workers(*specs):
            waits = measure(probe, default_slots, args)
            empty_broker(server)  # drop the slow jobs still queued so the workers stop promptly
    finally:
        probe.close()
    return waits


def shared_worker_command(environ: dict[str, str], processes: int) -> list[str]:
    """The baseline: worker-high's own command consuming both queues with a fixed pool."""
    argv = program_command("worker-high", environ)
    argv = [a for a in argv if not a.startswith(("--queues=", "--autoscale=", "--hostname="))]
    return [*argv, "--queues=high,default", f"--concurrency={processes}", "--hostname=shared@%h"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--high-jobs", type=int, default=60, help="short high jobs per run (default 60)")
    parser.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="high jobs sent per second (default 2: fewer than the shared worker frees slots for them, "
        "so the baseline measures waiting for a slot, not an ever-growing backlog)",
    )
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="length of a default job (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        workdir = Path(tmp)
        server = start_redis(workdir / "redis")
        try:
            environ = stack_environment(workdir / "var", server.url)
            default_slots = int(environ["KILN_DEFAULT_CONCURRENCY"])
            isolated = run(
                "isolated",
                server,
                workdir,
                [("worker-high", environ), ("worker-default", environ)],
                default_slots,
                args,
            )
            # As many processes as both pools have together at peak.
            shared_slots = int(environ["KILN_HIGH_MAX_PROCESSES"]) + default_slots
            shared = run(
                "shared",
                server,
                workdir,
                [("worker-shared", environ, shared_worker_command(environ, shared_slots))],
                shared_slots,
                args,
            )
        finally:
            server.stop()

    rows = [("isolated (kiln.conf)", isolated), ("shared worker", shared)]
    print(
        f"high-queue wait, {args.high_jobs} jobs at {args.rate:g}/s, default saturated with {args.slow_seconds:g} s jobs"
    )
    print(f"{'setup':<22}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, waits in rows:
        print(
            f"{label:<22}{statistics.median(waits) * 1000:>10.1f}{percentile(waits, 0.99) * 1000:>10.1f}"
            f"{max(waits) * 1000:>10.1f}"
        )
    p99_isolated, p99_shared = percentile(isolated, 0.99), percentile(shared, 0.99)
    ratio = p99_shared / p99_isolated
    print(f"p99 ratio shared/isolated: {ratio:.1f}x")
    ok_latency = p99_isolated < TARGET_P99_SECONDS
    ok_ratio = ratio >= TARGET_RATIO
    print(f"target isolated p99 < {TARGET_P99_SECONDS * 1000:.0f} ms: {'met' if ok_latency else 'MISSED'}")
    print(f"target ratio >= {TARGET_RATIO:.0f}x: {'met' if ok_ratio else 'MISSED'}")
    return 0 if ok_latency and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
