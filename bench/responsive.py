"""Does the site stay responsive while thumbnails saturate worker-high? (#15) Configurations side by side.

For each configuration (a set of environment overrides, `--config`; the first is the baseline) the whole
stack is started as `make run` starts it (`manage.py kiln run`: supervisord, gunicorn as kiln.conf runs
it, both pools, beat, Flower, the embedded Redis), with deploy/nginx/kiln.conf in front on a free port
(tests/support/nginx.py), and measured in one run:
  1. idle: a logged-in user's report page (12 ready photos) and a light API page (`/api/images/?ids=`
     of those photos, with a token), --samples of each, straight to gunicorn and through nginx, started
     at a fixed --rate (users arriving, not a client waiting for each answer);
  2. slowloris (no nginx, as under `make run`): --slow connections trickle headers or a body to gunicorn
     while the same two pages are loaded straight from it; the site stayed responsive when every request
     was answered within 5 s and their p99 is under --slowloris-bound-ms;
  3. loaded: worker-high saturated by a backlog of distinct 3-12 MP photos (a camera's file size)
     uploaded through the API, topped up so it never runs dry; the same samples again; thumbnails
     rendered per minute meanwhile, from the job history;
  4. upload to ready: photos uploaded at 500 a minute, or at --ready-load (0.8) of the baseline's loaded
     throughput when this machine renders fewer (the table says which), each polled through the ids list
     until the API answers `ready`; p50, p95 and p99 from the upload's start.
Prints, per configuration: idle and loaded p50/p99 per page and route, loaded p99 / idle p99 and the
target (at most 3x and under 100 ms); the thumbnails' throughput with its ratio to the baseline (target
at least 0.95); upload-to-ready; the slowloris verdict. The load average before each configuration is in
its header (other work on the machine shows there). Exits 1 when the last configuration (the candidate)
misses a target.

A configuration is `NAME` or `NAME:VAR=VALUE,VAR=VALUE`, KILN_* variables kiln.conf reads (e.g.
KILN_WEB_WORKERS, KILN_HIGH_MAX_PROCESSES; unset, the shipped defaults) plus two levers of the bench's own:
  KILN_HIGH_NICE=N   worker-high's processes and threads reniced to N as soon as the stack runs, whatever
                     kiln.conf's `nice -n` prefix says (pool processes the autoscaler forks later inherit
                     it): KILN_HIGH_NICE=0 is worker-high as it ran before it was niced;
  KILN_CPU_WEIGHTS=systemd  web, worker-high and worker-default each in a cgroup of its own with the
                     CPUWeight= of its deploy/systemd unit (100 when unset), as systemd runs them: there
                     Nice= orders processes only inside a unit. Needs root and a writable cpu cgroup (v1's
                     cpu.shares = weight x 1024 / 100, or v2's cpu.weight).
Default: the settings before #15 (worker-high at nice 0, up to 10 processes) against the shipped ones.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import io
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import psutil
from PIL import Image as PILImage

from bench.isolation import percentile
from bench.load import autoscale_of, jobs_since
from tests.support.nginx import NginxHarness, Site, nginx_binary, render_kiln_conf
from tests.support.processes import REPO, free_port, wait_for
from tests.support.stack import SHIPPED_SIZES, Stack, multipart, running_stack
from tests.thumbnails.images import jpeg_bytes

PASSWORD = "kiln-bench-responsive"
SIZES = [(2000, 1500), (3000, 2000), (3464, 2309), (4000, 3000)]  # 3, 6, 8 and 12 MP
SEED_PHOTOS = 12
TARGET_RATIO, TARGET_P99 = 3.0, 0.100
TARGET_THROUGHPUT = 0.95
SEEDS_RATE = 500  # uploads a minute the seeds' table asks of `high`
REQUEST_TIMEOUT = 5.0
BENCH_ONLY = ("KILN_HIGH_NICE", "KILN_CPU_WEIGHTS")
WEIGHED_PROGRAMS = {"web": "kiln-web.service", "worker-high": "kiln-worker-high.service",
                    "worker-default": "kiln-worker-default.service"}  # fmt: skip


@dataclass(frozen=True)
class Configuration:
    name: str
    overrides: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Configuration:
        name, _, assignments = text.partition(":")
        overrides = {}
        for assignment in filter(None, assignments.split(",")):
            variable, equals, value = assignment.partition("=")
            if not equals or not variable.startswith("KILN_"):
                raise argparse.ArgumentTypeError(f"{assignment!r}: expected KILN_VARIABLE=value")
            overrides[variable.strip()] = value.strip()
        configuration = cls(name=name, overrides=overrides)
        configuration.cpu_weights  # noqa: B018 - refuses an unknown value now, not after a stack started
        return configuration

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.overrides.items()) or "no overrides"

    @property
    def environ(self) -> dict[str, str]:
        return {k: v for k, v in self.overrides.items() if k not in BENCH_ONLY}

    @property
    def high_nice(self) -> int | None:
        raw = self.overrides.get("KILN_HIGH_NICE")
        return None if raw is None else int(raw)

    @property
    def cpu_weights(self) -> bool:
        weights = self.overrides.get("KILN_CPU_WEIGHTS", "")
        if weights not in ("", "systemd"):
            raise argparse.ArgumentTypeError(f"KILN_CPU_WEIGHTS={weights}: only `systemd` is known")
        return weights == "systemd"


@dataclass
class Series:
    """One page on one route: latencies in seconds and requests that got no answer."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class Result:
    configuration: Configuration
    load_before: tuple[float, float, float]
    idle: dict[tuple[str, str], Series]
    loaded: dict[tuple[str, str], Series]
    throughput: float  # images a minute during the loaded phase
    loaded_seconds: float
    other_cores: tuple[float, float]  # other work's CPU during the idle and the loaded phase
    pool_peak: int
    backlog_lowest: tuple[int | None, int]  # fewest pending images seen while loaded, pool maximum
    nice_seen: set[int]
    weighed: dict[str, tuple[int, int, int]]  # program: CPU weight, processes in its group, in its tree
    slowloris: Series
    slow_open: tuple[int, int]  # slow connections still open at the end / opened
    ready_rate: float
    ready_seconds: list[float]
    ready_missing: int


class OtherCpu:
    """CPU the rest of the machine used meanwhile (in cores): everything busy minus this bench, its stack
    and nginx, all children of this process. The load average lags by a minute and counts the previous
    configuration's tail; this says whether other work shared the cores during a phase."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.busy, self.ours = self.machine(), self.mine()

    @staticmethod
    def machine() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    @staticmethod
    def mine() -> float:
        me = psutil.Process()
        total = sum(me.cpu_times()[:4])  # user, system and the children it reaped (manage.py calls)
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
        return total

    def cores(self) -> float:
        busy, ours = self.machine() - self.busy, self.mine() - self.ours
        return max(0.0, busy - ours) / (time.monotonic() - self.began)


class Client:
    """A logged-in browser (session cookie) and an API token, against one base URL."""

    def __init__(self, base: str, token: str, report_id: int, image_ids: list[int]) -> None:
        self.base = base
        self.token = token
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        login = f"{base}/accounts/login/"
        page = self.opener.open(login, timeout=10).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": csrf}
        )
        self.opener.open(urllib.request.Request(login, form.encode(), {"Referer": login}), timeout=10).read()
        self.pages = {
            "report page": urllib.request.Request(f"{base}/reports/{report_id}/"),
            "API ?ids=": urllib.request.Request(
                f"{base}/api/images/?ids={','.join(map(str, image_ids))}",
                headers={"Authorization": f"Bearer {token}"},
            ),
        }

    def load(self, page: str) -> float | None:
        began = time.perf_counter()
        try:
            with self.opener.open(self.pages[page], timeout=REQUEST_TIMEOUT) as response:
                response.read()
                if response.status != 200:
                    return None
        except (OSError, urllib.error.HTTPError):
            return None
        return time.perf_counter() - began


def sample(
    clients: dict[str, Client], samples: int, rate: float
) -> tuple[dict[tuple[str, str], Series], float]:
    """`samples` loads of every page on every route, in turn, started at `rate` a second whatever the
    answers' times (each from its own thread), as users arrive: a slow answer does not hold back the
    next request, and every configuration's web does the same work in the same time, so the CPU left to
    the thumbnails is comparable. Returns the series and the seconds it took."""
    series = {(page, route): Series() for route, client in clients.items() for page in client.pages}
    order = [key for _ in range(samples) for key in series]
    lock = threading.Lock()

    def one(page: str, route: str) -> None:
        took = clients[route].load(page)
        with lock:
            if took is None:
                series[(page, route)].errors += 1
            else:
                series[(page, route)].seconds.append(took)

    threads = []
    began = time.monotonic()
    for n, key in enumerate(order):
        time.sleep(max(0.0, began + n / rate - time.monotonic()))
        thread = threading.Thread(target=one, args=key, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return series, time.monotonic() - began


def photo(width: int, height: int, n: int) -> bytes:
    """A gradient with a third of grain in it: about a camera's JPEG size (2.7 MB at 12 MP, where a flat
    gradient is 0.3 MB), so uploads carry what a photo's do."""
    grain = PILImage.effect_noise((width, height), 16).convert("RGB")
    gradient = PILImage.linear_gradient("L").resize((width, height)).convert("RGB")
    gradient.paste((40 * n, 120, 200), (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    PILImage.blend(gradient, grain, 0.3).save(out, "JPEG", quality=90)
    return out.getvalue()


class Photos:
    """Distinct 3-12 MP photos: four pictures, each upload with its own tail after the JPEG end marker,
    so no upload is deduplicated into a twin's renditions (as bench/load.py)."""

    def __init__(self) -> None:
        self.pictures = [photo(w, h, n) for n, (w, h) in enumerate(SIZES)]
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[str, bytes]:
        with self.lock:
            self.count += 1
            n = self.count
        return f"photo-{n}.jpg", self.pictures[n % len(self.pictures)] + f"kiln-responsive-{n}".encode()


def upload(stack: Stack, token: str, name: str, data: bytes, **fields: str) -> int:
    body, content_type = multipart(fields, {"file": (name, data)})
    request = urllib.request.Request(
        f"{stack.base_url}/api/images/",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202, response.status
        return json.loads(response.read())["id"]


def statuses(stack: Stack, token: str, ids: list[int]) -> dict[int, str]:
    """The API's answer for up to 200 ids (the ids list's limit)."""
    request = urllib.request.Request(
        f"{stack.base_url}/api/images/?ids={','.join(map(str, ids[:200]))}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {image["id"]: image["status"] for image in json.loads(response.read())["images"]}


def renice(processes: list[psutil.Process], level: int) -> None:
    """Every thread of every process: nice is per thread on Linux, and a thread the autoscaler forks
    from passes its level on to the new pool process."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            for thread in process.threads():
                os.setpriority(os.PRIO_PROCESS, thread.id, level)


class CpuWeights:
    """web, worker-high and worker-default in cpu cgroups of their own, weighted as their systemd units say.
    Processes forked later (gunicorn's and the autoscaler's) are born in their parent's cgroup."""

    def __init__(self) -> None:
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.shares").exists():
            self.root, self.file, self.scale = v1, "cpu.shares", 1024 / 100
        elif (v2 / "cgroup.subtree_control").exists() and "cpu" in (v2 / "cgroup.controllers").read_text():
            self.root, self.file, self.scale = v2, "cpu.weight", 1.0
        else:
            raise SystemExit("KILN_CPU_WEIGHTS=systemd: no cpu cgroup controller to weigh processes with")
        self.base = self.root / f"kiln-bench-{os.getpid()}"
        self.groups: dict[str, Path] = {}

    @staticmethod
    def unit_weight(unit: str) -> int:
        text = (REPO / "deploy" / "systemd" / unit).read_text()
        match = re.search(r"^CPUWeight=(\d+)\s*$", text, re.MULTILINE)
        return int(match.group(1)) if match else 100

    def apply(self, stack: Stack) -> dict[str, int]:
        """Each program's whole process tree into its group; the weights applied, by program."""
        try:
            self.base.mkdir()
        except OSError as exc:
            raise SystemExit(f"KILN_CPU_WEIGHTS=systemd: cannot make a cgroup ({exc}); run as root") from None
        weights = {}
        for program, unit in WEIGHED_PROGRAMS.items():
            weights[program] = self.unit_weight(unit)
            group = self.base / program
            group.mkdir()
            (group / self.file).write_text(str(round(weights[program] * self.scale)))
            self.groups[program] = group
            for process in stack.program_tree(program):
                with contextlib.suppress(ProcessLookupError, OSError):
                    (group / "cgroup.procs").write_text(str(process.pid))
        return weights

    def members(self, program: str) -> set[int]:
        return {int(pid) for pid in (self.groups[program] / "cgroup.procs").read_text().split()}

    def remove(self) -> None:
        """Anything left goes back to the root group; then the groups go."""
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def nice_levels(processes: list[psutil.Process]) -> set[int]:
    levels = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            levels |= {os.getpriority(os.PRIO_PROCESS, t.id) for t in process.threads()}
    return levels


class Backlog:
    """Keeps worker-high saturated: uploads photos whenever fewer than `floor` are pending (running ones
    included), checked every second. The queue is FIFO, so polling the oldest pending ids tells how many
    are left; `lowest` is the fewest seen, which says whether the queue ever ran dry."""

    def __init__(self, stack: Stack, token: str, photos: Photos, floor: int) -> None:
        self.stack, self.token, self.photos, self.floor = stack, token, photos, floor
        self.pending: list[int] = []
        self.uploaded = 0
        self.lowest: int | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def top_up(self, to: int | None = None) -> None:
        """Up to `to` (the floor by default) pending, three uploads at a time: one upload after another
        cannot keep up while a saturated machine starves the web, which is the very thing measured."""
        need = (to or self.floor) - len(self.pending)
        if need > 0:
            with ThreadPoolExecutor(3) as pool:
                names = [self.photos.next() for _ in range(need)]
                self.pending.extend(pool.map(lambda photo: upload(self.stack, self.token, *photo), names))
            self.uploaded += need

    def run(self) -> None:
        while not self.stop.wait(1):
            answer = statuses(self.stack, self.token, self.pending[: self.floor])
            self.pending = [i for i in self.pending if answer.get(i, "pending") == "pending"]
            self.lowest = min(len(self.pending), self.lowest if self.lowest is not None else self.floor)
            self.top_up()


def slowloris(port: int, connections: int, stop: threading.Event, opened: list[int]) -> None:
    """`connections` sockets to gunicorn, half trickling a header line, half a body byte every 0.5 s,
    from one thread. `opened` gets [opened, still open at the end]."""
    sockets = []
    for n in range(connections):
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            continue
        head = (
            b"POST /api/images/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
            if n % 2
            else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        )
        try:
            connection.sendall(head)
            sockets.append((connection, b"x" if n % 2 else b"X-a: b\r\n"))
        except OSError:
            connection.close()
    opened[:] = [len(sockets), len(sockets)]
    while not stop.wait(0.5):
        alive = []
        for connection, trickle in sockets:
            try:
                connection.sendall(trickle)
                alive.append((connection, trickle))
            except OSError:
                connection.close()
        sockets = alive
    opened[1] = len(sockets)
    for connection, _ in sockets:
        connection.close()


def upload_to_ready(
    stack: Stack, token: str, photos: Photos, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Uploads at `rate` a minute for `seconds`, each from its own thread; a poller asks the ids list
    every 0.25 s. Returns each photo's seconds from its upload's start to the API's `ready`, and how
    many never got there (failed, or not within 5 minutes)."""
    started: dict[int, float] = {}
    ready: dict[int, float] = {}
    lock = threading.Lock()
    errors = 0

    def one() -> None:
        nonlocal errors
        began = time.monotonic()
        try:
            image = upload(stack, token, *photos.next())
        except (OSError, AssertionError):
            with lock:
                errors += 1
            return
        with lock:
            started[image] = began

    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.25):
            with lock:
                waiting = [i for i in started if i not in ready]
            if not waiting:
                continue
            for chunk in range(0, len(waiting), 200):
                answer = statuses(stack, token, waiting[chunk : chunk + 200])
                now = time.monotonic()
                with lock:
                    for image, status in answer.items():
                        if status != "pending":
                            ready[image] = now if status == "ready" else float("nan")

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    threads = []
    began = time.monotonic()
    interval = 60 / rate
    n = 0
    while time.monotonic() - began < seconds:
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        threads.append(thread)
        n += 1
        time.sleep(max(0.0, began + n * interval - time.monotonic()))
    for thread in threads:
        thread.join(timeout=60)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with lock:
            if all(i in ready for i in started):
                break
        time.sleep(0.5)
    stop.set()
    poller.join(timeout=10)
    with lock:
        seconds_to_ready = [ready[i] - started[i] for i in started if i in ready and ready[i] == ready[i]]
        missing = len(started) - len(seconds_to_ready) + errors
    return seconds_to_ready, missing


def run_configuration(
    configuration: Configuration, args: argparse.Namespace, baseline_rate: float | None
) -> Result:
    load_before = os.getloadavg()
    print(
        f"== {configuration.name} ({configuration.describe()}), load average before {load_before[0]:.2f}",
        flush=True,
    )
    photos = Photos()
    environ = {**SHIPPED_SIZES, **configuration.environ}
    with (
        contextlib.ExitStack() as cleanup,  # exits last: the cgroups go once the stack has stopped
        tempfile.TemporaryDirectory(prefix="kiln-bench-responsive-") as tmp,
        running_stack(
            Path(tmp) / "var", DJANGO_SUPERUSER_PASSWORD=PASSWORD, LOG_LEVEL="WARNING", **environ
        ) as stack,
    ):
        stack.wait_until_running()
        high = stack.program_tree("worker-high")
        if configuration.high_nice is not None:
            renice(high, configuration.high_nice)
        maximum = autoscale_of(high[0])[0]
        cgroups = CpuWeights() if configuration.cpu_weights else None
        if cgroups:
            cleanup.callback(cgroups.remove)
            weights = cgroups.apply(stack)
        token = stack.manage("create_api_token", "admin").stdout.strip().splitlines()[-1]
        report_id = int(
            stack.manage(
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model; from reports.models import Report; "
                "print(Report.objects.create(name='Responsive', owner=get_user_model().objects.get(username='admin')).pk)",
            ).stdout.split()[-1]
        )
        seed = [
            upload(
                stack,
                token,
                f"seed-{n}.jpg",
                jpeg_bytes(1200, 900, color=(20 * n, 90, 160)),
                report=str(report_id),
            )
            for n in range(SEED_PHOTOS)
        ]
        wait_for(
            lambda: set(statuses(stack, token, seed).values()) == {"ready"},
            timeout=120,
            interval=0.5,
            what="the report's photos to be ready",
        )

        clients = {"direct": Client(stack.base_url, token, report_id, seed)}
        nginx = nginx_process = None
        binary = nginx_binary()
        if binary:
            nginx_port = free_port()
            var = Path(stack.environ["KILN_VAR_DIR"])
            site = Site(
                port=nginx_port,
                web_port=int(stack.environ["KILN_PORT"]),
                flower_port=int(stack.environ["KILN_FLOWER_PORT"]),
                static_root=var / "static",
                media_root=var / "media",
            )
            conf = Path(tmp) / "nginx-kiln.conf"
            conf.write_text(render_kiln_conf(site))
            nginx = NginxHarness(Path(tmp) / "nginx", binary)
            nginx.write(conf)
            nginx_process = nginx.start(nginx_port)
        try:
            if nginx:
                clients["nginx"] = Client(f"http://127.0.0.1:{nginx_port}", token, report_id, seed)

            print("  idle ...", flush=True)
            meter = OtherCpu()
            idle, _ = sample(clients, args.samples, args.rate)
            other_idle = meter.cores()

            print(f"  slowloris: {args.slow} connections ...", flush=True)
            stop, opened = threading.Event(), [0, 0]
            loris = threading.Thread(
                target=slowloris, args=(int(stack.environ["KILN_PORT"]), args.slow, stop, opened), daemon=True
            )
            loris.start()
            wait_for(lambda: opened[0] > 0, timeout=60, what="the slow connections to open")
            time.sleep(1.0)
            attacked, _ = sample({"direct": clients["direct"]}, args.slowloris_samples // 2, args.rate)
            stop.set()
            loris.join(timeout=30)
            slow = Series(
                seconds=[s for v in attacked.values() for s in v.seconds],
                errors=sum(v.errors for v in attacked.values()),
            )

            print("  loaded ...", flush=True)
            # Eight times the pool (about ten seconds of work here) is refilled every second; the
            # first --backlog photos carry the pool while a starved web refills slowly.
            floor = 8 * maximum
            backlog = Backlog(stack, token, photos, floor)
            backlog.top_up(max(floor, args.backlog))
            backlog.thread.start()
            time.sleep(5)  # the autoscaler grows worker-high to its maximum within about 2 s
            backlog.lowest = None  # the fewest pending while measuring, not while the pool grew
            began, meter = time.time(), OtherCpu()
            loaded, loaded_seconds = sample(clients, args.samples, args.rate)
            ended, other_loaded = time.time(), meter.cores()
            high = stack.program_tree("worker-high")
            pool_peak = len(high) - 1
            nice_seen = nice_levels(high)
            # Every process of the three programs, the ones forked since too, still in its weighted group.
            weighed = {
                program: (weights[program], len(cgroups.members(program)), len(stack.program_tree(program)))
                for program in WEIGHED_PROGRAMS
            } if cgroups else {}  # fmt: skip
            backlog.stop.set()
            backlog.thread.join(timeout=30)
            jobs = jobs_since(stack, began - 600)
            finished = [
                j for j in jobs if j["queue"] == "high" and j["finished"] and began <= j["finished"] <= ended
            ]
            throughput = len(finished) / (ended - began) * 60

            # The backlog out of the way before upload-to-ready: drop what waits, let the running finish.
            stack.manage("jobs", "clear", "high", "--yes")
            time.sleep(args.settle)

            rate = min(SEEDS_RATE, args.ready_rate or (baseline_rate or throughput) * args.ready_load)
            print(f"  upload to ready at {rate:.0f}/min ...", flush=True)
            ready_seconds, ready_missing = upload_to_ready(stack, token, photos, rate, args.ready_seconds)
        finally:
            if nginx_process:
                NginxHarness.stop(nginx_process)
    return Result(
        configuration=configuration,
        load_before=load_before,
        idle=idle,
        loaded=loaded,
        throughput=throughput,
        loaded_seconds=loaded_seconds,
        other_cores=(other_idle, other_loaded),
        pool_peak=pool_peak,
        backlog_lowest=(backlog.lowest, maximum),
        nice_seen=nice_seen,
        weighed=weighed,
        slowloris=slow,
        slow_open=(opened[0], opened[1]),
        ready_rate=rate,
        ready_seconds=ready_seconds,
        ready_missing=ready_missing,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def report(results: list[Result], args: argparse.Namespace) -> bool:
    """Print the tables; True when the last configuration meets every target."""
    baseline = results[0]
    missed: dict[str, list[str]] = {result.configuration.name: [] for result in results}
    print()
    print(f"responsive (#15): {os.cpu_count()} cores, {args.samples} samples per page, route and phase")
    for result in results:
        c = result.configuration
        load = " ".join(f"{v:.2f}" for v in result.load_before)
        print()
        other = result.other_cores
        print(
            f"[{c.name}] {c.describe()}; load average before: {load}; other work on the machine: "
            f"{other[0]:.2f} cores idle phase, {other[1]:.2f} loaded"
        )
        print(
            f"{'page':<13}{'route':<8}{'idle p50':>9}{'p99':>6}{'loaded p50':>11}{'p99':>6}{'errors':>7}"
            f"{'p99 ratio':>10}  target <= {TARGET_RATIO:g}x and < {ms(TARGET_P99)} ms"
        )
        met = True
        for key, idle in result.idle.items():
            loaded = result.loaded[key]
            idle99, loaded99 = percentile(idle.seconds, 0.99), percentile(loaded.seconds, 0.99)
            ratio = loaded99 / idle99
            ok = ratio <= TARGET_RATIO and loaded99 < TARGET_P99 and not (idle.errors or loaded.errors)
            met &= ok
            print(
                f"{key[0]:<13}{key[1]:<8}{ms(percentile(idle.seconds, 0.5)):>9}{ms(idle99):>6}"
                f"{ms(percentile(loaded.seconds, 0.5)):>11}{ms(loaded99):>6}{idle.errors + loaded.errors:>7}"
                f"{ratio:>9.1f}x  {'met' if ok else 'MISSED'}"
            )
        if "nginx" not in {route for _, route in result.idle}:
            print("nginx not installed: through-nginx rows not measured")
        print(
            f"loaded phase {result.loaded_seconds:.0f} s, worker-high {result.pool_peak} pool processes at its end, "
            f"nice levels seen in worker-high: {sorted(result.nice_seen)}"
        )
        if result.weighed:
            print(
                "cgroups as systemd's units: "
                + ", ".join(
                    f"{program} CPUWeight={weight} ({inside} of {tree} processes inside)"
                    for program, (weight, inside, tree) in result.weighed.items()
                )
            )
        lowest, pool = result.backlog_lowest
        saturated = lowest is not None and lowest > pool
        print(
            f"backlog: at least {lowest} photos pending (running ones included) at every check, "
            f"pool maximum {pool}: {'saturated' if saturated else 'RAN DRY, throughput understated'}"
        )
        if not met:
            missed[c.name].append("latency")

    print()
    print(
        f"{'thumbnails while loaded':<28}{'images/min':>11}{'vs ' + baseline.configuration.name:>14}  target >= {TARGET_THROUGHPUT}"
    )
    for result in results:
        ratio = result.throughput / baseline.throughput
        ok = ratio >= TARGET_THROUGHPUT
        if not ok:
            missed[result.configuration.name].append("throughput")
        print(
            f"{result.configuration.name:<28}{result.throughput:>11.1f}{ratio:>14.2f}  {'met' if ok else 'MISSED'}"
        )

    print()
    rate = baseline.ready_rate
    why = (
        f"the seeds' {SEEDS_RATE}/min"
        if rate >= SEEDS_RATE
        else f"{SEEDS_RATE}/min is more than this machine renders ({baseline.throughput:.0f}/min loaded, "
        f"{baseline.configuration.name}): {rate / baseline.throughput:.0%} of it"
        if not args.ready_rate
        else "--ready-rate"
    )
    print(f"upload -> ready (API says ready), photos at {rate:.0f}/min for {args.ready_seconds:g} s ({why})")
    print(f"{'configuration':<28}{'photos':>7}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'missing':>9}")
    for result in results:
        s = result.ready_seconds
        print(
            f"{result.configuration.name:<28}{len(s):>7}{percentile(s, 0.5):>8.2f}{percentile(s, 0.95):>8.2f}"
            f"{percentile(s, 0.99):>8.2f}{result.ready_missing:>9}"
        )

    print()
    bound = args.slowloris_bound_ms / 1000
    print(
        f"slowloris straight to gunicorn (no nginx, as make run): {args.slow} connections trickling headers or "
        f"a body; responsive = every request answered within {REQUEST_TIMEOUT:g} s and p99 < {args.slowloris_bound_ms:g} ms"
    )
    print(f"{'configuration':<28}{'answers':>8}{'errors':>7}{'p50 ms':>8}{'p99 ms':>8}{'slow open':>11}")
    for result in results:
        s = result.slowloris
        ok = not s.errors and percentile(s.seconds, 0.99) < bound
        if not ok:
            missed[result.configuration.name].append("slowloris")
        print(
            f"{result.configuration.name:<28}{len(s.seconds):>8}{s.errors:>7}{ms(percentile(s.seconds, 0.5)):>8}"
            f"{ms(percentile(s.seconds, 0.99)):>8}{f'{result.slow_open[1]}/{result.slow_open[0]}':>11}  "
            f"{'responsive' if ok else 'NOT responsive'}"
        )

    print()
    for name, misses in missed.items():
        print(f"{name}: {'every target met' if not misses else 'MISSED ' + ', '.join(misses)}")
    return not missed[results[-1].configuration.name]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        action="append",
        type=Configuration.parse,
        help="NAME[:KILN_VAR=VALUE,...], repeatable; the first is the baseline, the last the candidate "
        "(default: before:KILN_HIGH_NICE=0,KILN_HIGH_MAX_PROCESSES=10, worker-high as it ran before #15, "
        "then shipped: the settings as they ship)",
    )
    parser.add_argument("--samples", type=int, default=500, help="per page, route and phase (500)")
    parser.add_argument(
        "--rate",
        type=float,
        default=30,
        help="page loads a second, all pages and routes together (30: 2,000 loads in 67 s)",
    )
    parser.add_argument(
        "--ready-seconds", type=float, default=60, help="upload-to-ready: seconds of uploads (60)"
    )
    parser.add_argument(
        "--ready-load",
        type=float,
        default=0.8,
        help="upload-to-ready rate as a fraction of the baseline's throughput (0.8)",
    )
    parser.add_argument(
        "--ready-rate", type=float, default=0, help="upload-to-ready: uploads a minute instead"
    )
    parser.add_argument(
        "--settle", type=float, default=20, help="seconds for running thumbnails to finish (20)"
    )
    parser.add_argument(
        "--backlog", type=int, default=600, help="photos uploaded before the loaded phase (600)"
    )
    parser.add_argument("--slow", type=int, default=300, help="slowloris connections (300)")
    parser.add_argument(
        "--slowloris-samples", type=int, default=400, help="normal requests under slowloris (400)"
    )
    parser.add_argument(
        "--slowloris-bound-ms", type=float, default=100, help="p99 bound under slowloris (100)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small samples and short phases")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.ready_seconds = 50, 15
        args.settle, args.slow, args.slowloris_samples, args.backlog = 10, 50, 60, 60
    configurations = args.config or [
        # worker-high as it ran before #15: nice 0, up to 10 processes whatever the cores. (worker-default,
        # idle here, runs at the shipped 19 instead of 10.)
        Configuration.parse("before:KILN_HIGH_NICE=0,KILN_HIGH_MAX_PROCESSES=10"),
        Configuration.parse("shipped"),
    ]
    results: list[Result] = []
    for configuration in configurations:
        baseline_rate = results[0].throughput if results else None
        results.append(run_configuration(configuration, args, baseline_rate))
    return 0 if report(results, args) else 1


if __name__ == "__main__":
    sys.exit(main())
