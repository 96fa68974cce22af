"""Fault 8: PostgreSQL drops the workers' connections (pg_terminate_backend, again and again for a few
seconds) while thumbnail jobs run. The jobs retry and complete; nothing is half-written: every image ends
ready with exactly its two renditions and their files.

Runs against the PostgreSQL on 127.0.0.1:5432 (`.ci/run` has one), in a database of its own."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.support.processes import RedisServer, running_workers, stack_environment, wait_for
from tests.support.stack import run_manage
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.faults

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "kiln_faults"
IMAGES = 12


def postgres_reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


@pytest.fixture
def database() -> str:
    if not postgres_reachable():
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (.ci/run has one): SQLite has no connections to drop")
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return f"postgres://postgres@127.0.0.1:5432/{DATABASE}"


def terminate_connections() -> int:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DATABASE],
        ).fetchall()
    return len(rows)


def test_thumbnail_jobs_survive_dropped_database_connections(
    tmp_path: Path, broker: RedisServer, database: str
) -> None:
    environ = stack_environment(tmp_path / "var", broker.url, DATABASE_URL=database)
    assert run_manage(environ, "migrate", "--verbosity=0").returncode == 0
    paths = []
    for n in range(IMAGES):
        path = tmp_path / f"photo-{n}.jpg"
        path.write_bytes(jpeg_bytes(2400, 1600, color=(n * 20, 80, 160)))
        paths.append(str(path))
    with running_workers(("worker-high", environ)):
        ingest = run_manage(environ, "thumbnails", "ingest", *paths)
        assert ingest.returncode == 0, ingest.stderr
        dropped = 0
        for _ in range(15):  # about three seconds of a database that keeps dropping its connections
            dropped += terminate_connections()
            time.sleep(0.2)
        assert dropped > 0, "no worker connection was dropped: the fault did not happen"
        state_code = (
            "import json; from thumbnails.models import Image, Rendition; "
            "print(json.dumps({'statuses': sorted(Image.objects.values_list('status', flat=True)), "
            "'renditions': sorted(Image.objects.annotate(n=__import__('django.db.models', fromlist=['Count']).Count('renditions')).values_list('n', flat=True)), "
            "'files': list(Rendition.objects.values_list('file', flat=True))}))"
        )

        def state() -> dict:
            out = run_manage(environ, "shell", "-c", state_code)
            return json.loads(out.stdout.strip().splitlines()[-1])

        final = wait_for(
            lambda: (s := state())["statuses"] == ["ready"] * IMAGES and s,
            timeout=150,
            interval=2,
            what=lambda: f"every image to be ready after the database came back: {state()}",
        )
    assert final["renditions"] == [2] * IMAGES, "every ready image has exactly its two renditions"
    media = Path(environ["KILN_VAR_DIR"]) / "media"
    assert all((media / name).is_file() for name in final["files"])
