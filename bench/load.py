"""Sustained load on the stack as kiln.conf runs it: thumbnails on `high`, purges on `default`, report pages.

Starts the whole stack (`manage.py kiln run`: supervisord, embedded Redis, gunicorn, both pools, beat,
Flower) in a temporary directory, with the shipped process counts (tests/support/stack.SHIPPED_SIZES), then:
  1. calibrates: uploads a burst of 3-12 MP photos through the API and measures how many per minute the
     2-core machine renders; the steady rate is a fraction of that (--load, 0.7), or --rate per minute;
  2. drives for --minutes (5): uploads at the steady rate, a purge run of report history every 30 s on
     `default` (rows seeded to purge), and a logged-in user loading report pages twice a second;
  3. reports per queue, from the job history: jobs finished per minute, wait (publish -> start) p50, p95,
     p99 and max, success rate; the web pages' latency; each pool's RSS (main process and children) at
     the start and at the end. Then the seeds' benchmark table for comparison.

Every upload is a distinct file (a photo with a unique tail after its JPEG end marker), so no upload is
deduplicated into a twin's renditions.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import psutil

from bench.isolation import percentile
from tests.support.processes import wait_for
from tests.support.stack import SHIPPED_SIZES, Stack, running_stack
from tests.thumbnails.images import jpeg_bytes

PASSWORD = "kiln-bench-load"
SIZES = [(2000, 1500), (3000, 2000), (3464, 2309), (4000, 3000)]  # 3, 6, 8 and 12 MP
# The seeds' benchmark table: target throughput, max latency (wait), success rate.
SEEDS = {"high": ("500/min", "5 s", "99.9 %"), "default": ("500/min", "120 s", "95.0 %")}


class Driver:
    def __init__(self, stack: Stack, token: str, report_id: int) -> None:
        self.stack = stack
        self.report_id = report_id
        self.token = token
        self.photos = [jpeg_bytes(w, h, color=(40 * n, 120, 200)) for n, (w, h) in enumerate(SIZES)]
        self.count = 0
        self.lock = threading.Lock()
        self.upload_errors = 0
        self.page_seconds: list[float] = []
        self.page_errors = 0

    def upload(self) -> None:
        with self.lock:
            self.count += 1
            n = self.count
        data = self.photos[n % len(self.photos)] + f"kiln-load-{n}".encode()
        try:
            status, _answer = self.stack.upload(self.token, f"load-{n}.jpg", data, timeout=30)
            assert status == 202
        except Exception:
            with self.lock:
                self.upload_errors += 1

    def browse(self, stop: threading.Event) -> None:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login = f"{self.stack.base_url}/accounts/login/"
        opener.open(login, timeout=10).read()
        csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": csrf}
        )
        opener.open(
            urllib.request.Request(login, data=form.encode(), headers={"Referer": login}), timeout=10
        ).read()
        pages = [f"{self.stack.base_url}/reports/", f"{self.stack.base_url}/reports/{self.report_id}/"]
        n = 0
        while not stop.wait(0.5):
            began = time.perf_counter()
            try:
                opener.open(pages[n % 2], timeout=30).read()
                self.page_seconds.append(time.perf_counter() - began)
            except Exception:
                self.page_errors += 1
            n += 1


def rss_mb(stack: Stack) -> dict[str, tuple[float, int]]:
    """Per pool: RSS of the main process and its pool processes together (MB), and how many processes
    (worker-high autoscales, so compare per process too)."""
    result = {}
    for program in ("worker-high", "worker-default"):
        processes = stack.program_tree(program)
        result[program] = (sum(p.memory_info().rss for p in processes) / 2**20, len(processes))
    return result


def autoscale_of(worker: psutil.Process) -> tuple[int, int]:
    """The (maximum, minimum) a Celery worker actually runs with: `--autoscale=MAX,MIN` on its command line."""
    for word in worker.cmdline():
        if word.startswith("--autoscale="):
            maximum, minimum = word.split("=", 1)[1].split(",")
            return int(maximum), int(minimum)
    raise RuntimeError(f"the worker runs without --autoscale: {worker.cmdline()}")


def jobs_since(stack: Stack, since: float) -> list[dict]:
    code = (
        "import json, datetime; from jobs.models import Job; "
        f"since = datetime.datetime.fromtimestamp({since}, datetime.UTC); "
        "rows = Job.objects.filter(published_at__gte=since).values_list('queue', 'task_name', 'state', 'published_at', 'started_at', 'finished_at'); "
        "print(json.dumps([[q, t, s, p and p.timestamp(), st and st.timestamp(), f and f.timestamp()] for q, t, s, p, st, f in rows]))"
    )
    out = stack.manage("shell", "-c", code, timeout=300)
    return [
        dict(zip(("queue", "task", "state", "published", "started", "finished"), row, strict=True))
        for row in json.loads(out.stdout.strip().splitlines()[-1])
    ]


def calibrate(stack: Stack, driver: Driver, burst: int) -> float:
    """Images per minute the stack renders when uploads come as fast as gunicorn takes them."""
    began = time.time()
    threads = [threading.Thread(target=driver.upload) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def finished() -> list[dict] | None:
        jobs = [j for j in jobs_since(stack, began) if j["task"].startswith("thumbnails.") and j["finished"]]
        return jobs if len(jobs) >= burst else None

    jobs = wait_for(finished, timeout=600, interval=2, what=f"the {burst} calibration images to finish")
    # Finish to finish: the rate once the pool renders, without the first job's own time (and the
    # autoscaler's ramp from its minimum), which publish-to-finish counted and so underestimated.
    finishes = sorted(j["finished"] for j in jobs)
    return (len(finishes) - 1) / (finishes[-1] - finishes[0]) * 60


def seed_and_purge(stack: Stack, seed: str) -> None:
    """Expired report history rows, then a purge run of them on `default` (as an operator would ask)."""
    stack.manage("shell", "-c", seed)
    stack.manage("purge", "run", "--policy", "report_history")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the calibrated rate (0.7)")
    parser.add_argument(
        "--rate", type=float, default=0, help="uploads per minute instead of --load (e.g. the seeds' 500)"
    )
    parser.add_argument("--burst", type=int, default=60, help="calibration uploads (60)")
    parser.add_argument(
        "--history-rows", type=int, default=20_000, help="report history rows seeded per purge"
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-load-") as tmp,
        running_stack(
            Path(tmp) / "var", DJANGO_SUPERUSER_PASSWORD=PASSWORD, LOG_LEVEL="WARNING", **SHIPPED_SIZES
        ) as stack,
    ):
        stack.wait_until_running()
        token = stack.manage("create_api_token", "admin").stdout.strip().splitlines()[-1]
        created = stack.manage(
            "shell",
            "-c",
            "from reports.models import Report; print(Report.objects.get_or_create(name='Load')[0].pk)",
        )
        driver = Driver(stack, token, report_id=int(created.stdout.strip().splitlines()[-1]))
        high = stack.program_tree("worker-high")[0]
        high_command = f"--autoscale={','.join(map(str, autoscale_of(high)))} at nice {high.nice()}"
        capacity = calibrate(stack, driver, args.burst)
        rate = args.rate or capacity * args.load
        print(
            f"calibrated: {capacity:.0f} images/min rendered at most; driving {rate:.0f}/min "
            f"({rate / capacity:.0%})",
            flush=True,
        )

        rss_start = rss_mb(stack)
        stop = threading.Event()
        browser = threading.Thread(target=driver.browse, args=(stop,), daemon=True)
        browser.start()
        began = time.time()
        deadline = began + args.minutes * 60
        next_purge = began
        uploads: list[threading.Thread] = []
        interval = 60 / rate
        next_upload = began
        while time.time() < deadline:
            now = time.time()
            if now >= next_purge:
                seed = (
                    "from datetime import timedelta; from django.utils import timezone; "
                    "from reports.models import Report, ReportHistoryRecord as H; r = Report.objects.get(name='Load'); "
                    f"old = timezone.now() - timedelta(days=400); H.objects.bulk_create([H(report=r, rendered_at=old) for _ in range({args.history_rows})], batch_size=5000)"
                )
                threading.Thread(target=seed_and_purge, args=(stack, seed), daemon=True).start()
                next_purge += 30
            if now >= next_upload:
                thread = threading.Thread(target=driver.upload, daemon=True)
                thread.start()
                uploads.append(thread)
                next_upload += interval
            time.sleep(max(0.0, min(next_upload, next_purge, deadline) - time.time()))
        stop.set()
        for thread in uploads:
            thread.join(timeout=60)
        # Let the backlog drain: every job published during the run must end to be counted.
        wait_for(
            lambda: all(j["finished"] for j in jobs_since(stack, began) if j["queue"] in ("high", "default")),
            timeout=900,
            interval=5,
            what="the jobs published during the run to finish",
        )
        rss_end = rss_mb(stack)
        jobs = [j for j in jobs_since(stack, began) if j["published"] <= deadline]

    minutes = args.minutes
    print()
    print(
        f"{args.minutes:g} minutes at {rate:.0f} uploads/min (calibrated capacity {capacity:.0f}/min), "
        f"{os.cpu_count()} cores; worker-high {high_command}"
    )
    header = f"{'queue':<9}{'jobs':>6}{'per min':>9}{'wait p50':>10}{'p95':>8}{'p99':>8}{'max':>8}{'success':>9}{'RSS/procs start':>17}{'end':>11}  seeds: throughput, max wait, success"
    print(header)
    for queue, program in (("high", "worker-high"), ("default", "worker-default")):
        mine = [j for j in jobs if j["queue"] == queue]
        waits = [j["started"] - j["published"] for j in mine if j["started"] and j["published"]]
        done = [j for j in mine if j["state"] in ("succeeded", "failed")]
        success = sum(j["state"] == "succeeded" for j in done) / len(done) if done else float("nan")
        seeds = SEEDS[queue]
        print(
            f"{queue:<9}{len(mine):>6}{len(mine) / minutes:>9.1f}{percentile(waits, 0.5):>9.2f}s{percentile(waits, 0.95):>7.2f}s"
            f"{percentile(waits, 0.99):>7.2f}s{max(waits, default=float('nan')):>7.2f}s{success:>9.1%}"
            f"{rss_start[program][0]:>6.0f}MB/{rss_start[program][1]:<2}{rss_end[program][0]:>6.0f}MB/{rss_end[program][1]:<2}"
            f"  {seeds[0]}, {seeds[1]}, {seeds[2]}"
        )
    pages = driver.page_seconds
    print(
        f"report pages: {len(pages)} loads, p50 {percentile(pages, 0.5) * 1000:.0f} ms, p95 {percentile(pages, 0.95) * 1000:.0f} ms, "
        f"max {max(pages, default=0) * 1000:.0f} ms, {driver.page_errors} errors; upload errors: {driver.upload_errors}"
    )
    if pages:
        print(f"report page mean {statistics.mean(pages) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
