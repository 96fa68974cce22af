"""Real processes for integration tests and benchmarks: a private redis-server and Kiln's Celery pools.

Workers are started with the `command` of their program in deploy/supervisor/kiln.conf, the file that
ships, expanded the way supervisord expands it. Everything is stopped by the process id it was started
with; nothing here touches a process it did not start.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"
KILN_CONF = REPO / "deploy" / "supervisor" / "kiln.conf"
PROBE_TASKS = "tests.support.probe_tasks"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], object], *, timeout: float, what: str | Callable[[], str], interval: float = 0.05
) -> object:
    """Poll `condition` until it returns something truthy; fail saying what did not happen (`what` may be
    a function, called at the deadline, to describe the state things were left in)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            description = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {description}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, *, timeout: float = 30.0) -> None:
    """TERM the process we started, then KILL it and any children it left if it does not exit in time."""
    if process.poll() is not None:
        return
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()


def kill_worker(pid: int) -> None:
    """SIGKILL the worker's main process and its pool processes at once, like the OOM killer or a lost host."""
    main = psutil.Process(pid)
    victims = [main, *main.children(recursive=True)]
    for process in victims:
        os.kill(process.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, decode_responses=True)

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(directory: Path, *, port: int | None = None, persistent: bool = False) -> RedisServer:
    """The virtualenv's redis-server (the one `make run` embeds) on a free loopback port (or `port`).

    `persistent`: an append-only file fsynced at every write, as production Redis should run, so a Redis
    killed and started again on the same directory comes back with every queued and unacknowledged job.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = open(directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(
        [
            str(VENV_BIN / "redis-server"),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            *(("--appendonly", "yes", "--appendfsync", "always") if persistent else ("--appendonly", "no")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = RedisServer(process=process, port=port)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"redis-server exited with {process.returncode}; see {directory / 'redis.log'}"
            )
        try:
            return bool(server.client().ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=10, what=f"redis-server on port {port} to answer PING")
    except BaseException:
        stop_process(process)
        raise
    return server


def program_command(program: str, environ: Mapping[str, str], conf: Path = KILN_CONF) -> list[str]:
    """The argv supervisord would run for `program` of kiln.conf (or `conf`), `%(ENV_X)s` taken from environ."""
    parser = configparser.RawConfigParser()
    parser.read(conf)
    raw = parser.get(f"program:{program}", "command")

    def expand(match: re.Match[str]) -> str:
        return environ[match.group(1)]

    expanded = re.sub(r"%\(ENV_(\w+)\)s", expand, raw)
    if re.search(r"%\((?!ENV_)", expanded):
        raise AssertionError(f"kiln.conf [program:{program}] uses an expansion the tests do not know: {raw}")
    return shlex.split(expanded.replace("%%", "%"))


def stack_environment(var_dir: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a Kiln process in a test: private var dir, private Redis, kiln.conf variables."""
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "KILN_HOME": str(REPO),
        "KILN_VENV": sys.prefix,
        "KILN_USER": psutil.Process().username(),
        "KILN_VAR_DIR": str(var_dir),
        "KILN_LOG_DIR": str(var_dir / "log"),
        "KILN_RUN_DIR": str(var_dir / "run"),
        "KILN_PORT": str(free_port()),
        "KILN_FLOWER_PORT": str(free_port()),
        "KILN_WEB_WORKERS": "2",
        "KILN_HIGH_MIN_PROCESSES": "2",
        "KILN_HIGH_MAX_PROCESSES": "10",
        "KILN_DEFAULT_CONCURRENCY": "2",
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    environ.update(overrides)
    for name in ("KILN_LOG_DIR", "KILN_RUN_DIR"):
        Path(environ[name]).mkdir(parents=True, exist_ok=True)
    return environ


@dataclass
class Worker:
    program: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def celery_process(self) -> psutil.Process:
        """The Celery main process (for worker-default it is `nice`'s pid: nice execs celery)."""
        return psutil.Process(self.pid)

    def pool_size(self) -> int:
        """Live pool processes; one that exits while being counted (the autoscaler shrinking) is not one."""
        alive = 0
        for child in self.celery_process().children():
            with contextlib.suppress(psutil.NoSuchProcess):
                alive += child.status() != psutil.STATUS_ZOMBIE
        return alive

    def stop(self, timeout: float = 60.0) -> None:
        stop_process(self.process, timeout=timeout)


def start_worker(
    program: str, environ: Mapping[str, str], command: list[str] | None = None, *, ready_timeout: float = 30
) -> Worker:
    """Start one of kiln.conf's worker programs as supervisord would, with the test probe tasks loaded.

    `command` replaces the program's own command line (a benchmark's baseline worker, say).
    """
    argv = [*(command or program_command(program, environ)), f"--include={PROBE_TASKS}"]
    log_path = Path(environ["KILN_LOG_DIR"]) / f"{program}-{time.monotonic_ns()}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(argv, cwd=REPO, env=dict(environ), stdout=log, stderr=subprocess.STDOUT)
    worker = Worker(program=program, process=process, log_path=log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{program} exited with {process.returncode}:\n{worker.log()[-3000:]}")
        return " ready." in worker.log()

    try:
        wait_for(ready, timeout=ready_timeout, what=f"{program} to log that it is ready")
    except BaseException:
        stop_process(process)  # a worker still starting would consume the next test's queues
        raise
    return worker


@contextlib.contextmanager
def running_workers(*specs: tuple) -> Iterator[list[Worker]]:
    """Start workers from `(program, environ)` or `(program, environ, command)` specs; stop them all after."""
    workers: list[Worker] = []
    try:
        for spec in specs:
            workers.append(start_worker(*spec))
        yield workers
    except BaseException:
        workers_describe(workers)
        raise
    finally:
        for worker in workers:
            worker.stop()


def workers_describe(workers: list[Worker], *, lines: int = 200) -> None:
    """For a failed test's captured output: is each worker alive, what are its threads doing (Celery logs
    every thread's stack on SIGUSR1), and the end of its log."""
    for worker in workers:
        if worker.process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(worker.celery_process().pid, signal.SIGUSR1)
    time.sleep(1)
    for worker in workers:
        returncode = worker.process.poll()
        state = "running" if returncode is None else f"exited with {returncode}"
        try:
            if returncode is None:
                main = worker.celery_process()
                state += f", {len(main.children())} children, {main.cpu_percent(interval=0.5):.0f}% CPU"
        except psutil.NoSuchProcess:
            pass
        tail = "\n".join(worker.log().splitlines()[-lines:])
        print(f"--- {worker.program} (pid {worker.pid}, {state}), end of {worker.log_path}:")
        print(tail)
