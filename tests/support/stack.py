"""The whole Kiln stack as `make run` starts it (`manage.py kiln run`), on a private var directory."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from blueprint.stack import programs
from tests.support.processes import REPO, stack_environment, stop_process, wait_for

# The admin's password in the stacks tests start (DJANGO_SUPERUSER_PASSWORD).
ADMIN_PASSWORD = "kiln-integration-admin"
# The process counts a stack gets as shipped, where stack_environment picks smaller or fixed ones for
# tests: benchmarks pass these. Empty is unset: worker-high's ceiling then follows the cores (KILN_QUEUES).
SHIPPED_SIZES = {
    "KILN_WEB_WORKERS": "3",
    "KILN_HIGH_MIN_PROCESSES": "2",
    "KILN_HIGH_MAX_PROCESSES": "",
    "KILN_DEFAULT_CONCURRENCY": "2",
}


def run_manage(environ: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def migrated_environ(var_dir: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    """stack_environment with its private SQLite database migrated (workers write job history to it)."""
    environ = stack_environment(var_dir, redis_url, **overrides)
    result = run_manage(environ, "migrate", "--verbosity=0")
    assert result.returncode == 0, result.stderr
    return environ


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return 0


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode a multipart/form-data body (the standard library has no encoder)."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Stack:
    process: subprocess.Popen
    environ: dict[str, str]
    setup_output: str

    @property
    def var_dir(self) -> Path:
        return Path(self.environ["KILN_VAR_DIR"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.environ['KILN_PORT']}"

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_manage(self.environ, *args, timeout=timeout)

    def upload(self, token: str, name: str, data: bytes, timeout: float = 60) -> tuple[int, dict]:
        """POST one image to the API with a token: (status, JSON answer), errors included."""
        body, content_type = multipart({}, {"file": (name, data)})
        request = urllib.request.Request(
            f"{self.base_url}/api/images/",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def program_states(self) -> dict[str, str]:
        states = {}
        for line in self.manage("kiln", "ctl", "status").stdout.splitlines():
            name, state, *_ = line.split()
            states[name.removeprefix("kiln:")] = state
        return states

    def program_tree(self, program: str) -> list[psutil.Process]:
        """A supervisord program's main process (as supervisorctl knows its pid), then its descendants."""
        main = psutil.Process(int(self.manage("kiln", "ctl", "pid", f"kiln:{program}").stdout.strip()))
        return [main, *main.children(recursive=True)]

    def wait_until_running(self) -> None:
        wait_for(
            lambda: (
                (self.var_dir / "run" / "supervisor.sock").exists()
                and all(self.program_states().get(p) == "RUNNING" for p in programs())
            ),
            timeout=60,
            interval=0.5,
            what=f"all six programs RUNNING under supervisord; see {self.var_dir / 'log'}",
        )
        wait_for(lambda: http_status(f"{self.base_url}/") == 200, timeout=30, what="gunicorn to serve /")


@contextlib.contextmanager
def running_stack(var_dir: Path, **overrides: str) -> Iterator[Stack]:
    """Set up (migrate, admin user) and start the stack; stop supervisord by its pid afterwards."""
    environ = stack_environment(var_dir, redis_url="unused", **overrides)
    del environ["REDIS_URL"]  # unset means the embedded redis-server, as on a laptop
    setup = run_manage(environ, "kiln", "setup")
    assert setup.returncode == 0, setup.stderr
    log = open(var_dir / "kiln-run.out", "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [sys.executable, "manage.py", "kiln", "run"],
        cwd=REPO,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(process=process, environ=environ, setup_output=setup.stdout)
    try:
        yield stack
    finally:
        stop_process(process, timeout=120)
