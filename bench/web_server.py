"""gunicorn's sync worker (config.wsgi, what Kiln ran before) against its asyncio ASGI worker (config.asgi,
kiln.conf's `web` today), side by side on one migrated database, the same worker count and code.

For each server, rounds taken in turn (A B A B ...): --requests GETs of the login page and of a logged-in
report page from 4 client threads, then the same while --slow clients trickle their headers or bodies
(slowloris; no nginx in front, as under `make run`). Prints p50/p99 per server and the ratio ASGI/sync,
and how many requests got no answer within 5 s (the slow phase: 40 requests, once, after the rounds).
Exits 1 if the ASGI server misses any answer, or is more than 1.5x the sync worker's p50 with no slow
clients (it costs about 1.3x: the request crosses the event loop; Django's stock ASGI handler, with a
thread hop per middleware hook, measured 1.8x).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.isolation import percentile
from tests.support.processes import REPO, free_port, stack_environment, stop_process, wait_for
from tests.support.stack import http_status, run_manage

SERVERS = {
    "sync (config.wsgi)": ["config.wsgi:application"],
    "asgi (config.asgi)": ["config.asgi:application", "--worker-class=asgi"],
}
SEED = (
    "from django.contrib.auth import get_user_model; from reports.models import Report; "
    "u = get_user_model().objects.create_user('reader', password='reader-pw-1'); "
    "Report.objects.create(name='Bench', owner=u); print(Report.objects.get().pk)"
)


def start(argv: list[str], environ: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    command = [
        f"{sys.prefix}/bin/gunicorn", *argv, f"--bind=127.0.0.1:{port}",
        f"--workers={environ['KILN_WEB_WORKERS']}", "--timeout=60",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=environ, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    wait_for(
        lambda: http_status(f"http://127.0.0.1:{port}/accounts/login/") == 200, timeout=30, what=str(log)
    )
    return process


def logged_in(base: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": "reader", "password": "reader-pw-1", "csrfmiddlewaretoken": token}
    )
    opener.open(
        urllib.request.Request(f"{base}/accounts/login/", form.encode(), {"Referer": base}), timeout=10
    )
    return opener


def trickle(port: int, stop: threading.Event, body: bool) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            head = b"POST /api/images/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
            connection.sendall(head if body else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not stop.wait(0.5):
                connection.sendall(b"x" if body else b"X-a: b\r\n")
    except OSError:
        pass


def round_of(base: str, opener, report: str, requests: int, slow: int, port: int) -> tuple[list[float], int]:
    stop = threading.Event()
    slow_threads = [
        threading.Thread(target=trickle, args=(port, stop, n % 2 == 1), daemon=True) for n in range(slow)
    ]
    for thread in slow_threads:
        thread.start()
    if slow:
        time.sleep(1.5)

    def one(n: int) -> float | None:
        url = f"{base}/accounts/login/" if n % 2 else f"{base}/reports/{report}/"
        started = time.perf_counter()
        try:
            (opener.open if n % 2 == 0 else urllib.request.urlopen)(url, timeout=5).read()
        except OSError:
            return None
        return time.perf_counter() - started

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(requests)))
    finally:
        stop.set()
        for thread in slow_threads:
            thread.join(timeout=5)
    answered = [r for r in results if r is not None]
    return answered, len(results) - len(answered)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per server and phase per round (400)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, servers in turn (3)")
    parser.add_argument("--slow", type=int, default=30, help="slow clients in the second phase (30)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiln-bench-web-") as tmp:
        environ = stack_environment(
            Path(tmp) / "var", "redis://127.0.0.1:1/0", KILN_WEB_WORKERS="3", LOG_LEVEL="WARNING"
        )
        assert run_manage(environ, "migrate", "--verbosity=0").returncode == 0
        report = run_manage(environ, "shell", "-c", SEED).stdout.split()[-1]
        ports = {name: free_port() for name in SERVERS}
        processes = {
            name: start(argv, environ, ports[name], Path(tmp) / f"{name.split()[0]}.log")
            for name, argv in SERVERS.items()
        }
        try:
            openers = {name: logged_in(f"http://127.0.0.1:{ports[name]}") for name in SERVERS}
            figures = {(name, phase): ([], 0) for name in SERVERS for phase in ("idle", "slow")}
            for number in range(args.rounds):
                # Slow clients once, last: against the sync server every request then waits out its timeout.
                phases = [("idle", 0, args.requests)]
                if number == args.rounds - 1:
                    phases.append(("slow", args.slow, 40))
                for phase, slow, requests in phases:
                    for name in SERVERS:
                        base = f"http://127.0.0.1:{ports[name]}"
                        answered, missed = round_of(base, openers[name], report, requests, slow, ports[name])
                        times, misses = figures[(name, phase)]
                        figures[(name, phase)] = (times + answered, misses + missed)
        finally:
            for process in processes.values():
                stop_process(process)

    print(f"{'server':20} {'phase':6} {'answers':>8} {'missed':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, phase), (times, missed) in figures.items():
        print(
            f"{name:20} {phase:6} {len(times):8d} {missed:7d} "
            f"{percentile(times, 0.5) * 1000:8.1f} {percentile(times, 0.99) * 1000:8.1f}"
        )
    sync, asgi = SERVERS
    ratio = percentile(figures[(asgi, "idle")][0], 0.5) / percentile(figures[(sync, "idle")][0], 0.5)
    print(f"idle p50 asgi/sync: {ratio:.2f}")
    missed = figures[(asgi, "idle")][1] + figures[(asgi, "slow")][1]
    verdict = "met" if missed == 0 and ratio <= 1.5 else "MISSED"
    print(f"target: asgi answers every request, slow clients or not, and idle p50 <= 1.5x sync: {verdict}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
