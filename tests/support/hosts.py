"""Kiln hosts in a test: web and pools started from kiln.conf's commands with a hostname and data directory of
their own, sharing the services they are given (Redis, a database, an S3 bucket). Stopped by process id."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO, Worker, program_command, start_worker, stop_process, wait_for
from tests.support.stack import http_status, multipart, run_manage
from tests.thumbnails.images import jpeg_bytes


@contextlib.contextmanager
def shared_database(directory: Path) -> Iterator[str]:
    """The database both hosts use: a scratch PostgreSQL database when the tests run on PostgreSQL, else one
    SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{directory / 'shared.sqlite3'}"
        return
    import psycopg

    name = f"kiln_hosts_{secrets.token_hex(4)}"
    base, _, _ = url.rpartition("/")
    admin = base + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


@dataclass
class Host:
    name: str
    environ: dict[str, str]
    web: subprocess.Popen | None = None
    workers: list[Worker] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.environ['KILN_PORT']}"

    @property
    def media_root(self) -> Path:
        return Path(self.environ["MEDIA_ROOT"])

    def web_start(self) -> None:
        log = open(Path(self.environ["KILN_LOG_DIR"]) / "web.log", "ab")  # noqa: SIM115 - owned by the child
        self.web = subprocess.Popen(
            program_command("web", self.environ),
            cwd=REPO,
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: http_status(f"{self.base_url}/healthz") in {200, 503},
            timeout=60,
            what=f"{self.name}'s web to answer /healthz",
        )

    def worker_start(self, program: str = "worker-high") -> Worker:
        pool = program.removeprefix("worker-")
        command = [
            f"--hostname={pool}@{self.name}" if part.startswith("--hostname=") else part
            for part in program_command(program, self.environ)
        ]
        worker = start_worker(program, self.environ, command, ready_timeout=60)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.web is not None:
            stop_process(self.web)

    def upload(self, token: str, name: str, data: bytes) -> dict:
        body, content_type = multipart({}, {"file": (name, data)})
        request = urllib.request.Request(
            f"{self.base_url}/api/images/",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 202
            return json.loads(response.read())

    def images(self, token: str, ids: list[int]) -> dict[int, dict]:
        request = urllib.request.Request(
            f"{self.base_url}/api/images/?ids={','.join(map(str, ids))}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return {image["id"]: image for image in json.loads(response.read())["images"]}


def photos(count: int, seed: int, size: int = 800) -> list[bytes]:
    """`count` distinct JPEGs `size` pixels wide (4:3)."""
    return [
        jpeg_bytes(width=size, height=size * 3 // 4, color=(seed, 10 * n, 200 - 10 * n)) for n in range(count)
    ]


def all_ready(host: Host, token: str, ids: list[int]) -> dict[int, dict] | None:
    images = host.images(token, ids)
    return images if all(image["status"] == "ready" for image in images.values()) else None


def jobs_by_image(host: Host) -> dict[int, list[tuple[str, str]]]:
    """Each image's rendition jobs in the shared history: (worker, state)."""
    script = (
        "import json; from jobs.models import Job; "
        "print(json.dumps([[j.args, j.worker, j.state] for j in "
        "Job.objects.filter(task_name='thumbnails.tasks.rendition_generate')]))"
    )
    done = run_manage(host.environ, "shell", "-c", script)
    assert done.returncode == 0, done.stderr
    found: dict[int, list[tuple[str, str]]] = {}
    for args, worker, state in json.loads(done.stdout.strip().splitlines()[-1]):
        found.setdefault(args[0], []).append((worker, state))
    return found
