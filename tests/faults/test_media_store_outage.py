"""The S3 server stops in the middle of a batch of thumbnail jobs: uploads meanwhile answer 503 with nothing
stored, `jobs health` is critical with the reason, the jobs that met the outage retry as transient failures and
every image is ready once the store is back; no worker dies, nothing is marked failed."""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

import pytest

from tests.support.hosts import Host, all_ready, photos
from tests.support.processes import RedisServer, stack_environment, wait_for
from tests.support.s3 import start_s3
from tests.support.stack import run_manage

pytestmark = [pytest.mark.faults, pytest.mark.processes]


def test_thumbnail_jobs_wait_out_a_media_store_outage_and_uploads_get_503(
    tmp_path: Path, broker: RedisServer
):
    server = start_s3(tmp_path / "s3")
    environ = stack_environment(
        tmp_path / "host",
        broker.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        KILN_UPLOADS_PER_MINUTE="1000",
        KILN_HIGH_MIN_PROCESSES="2",
        KILN_HIGH_MAX_PROCESSES="2",
        **server.environment("site"),
    )
    host = Host(name="host", environ=environ)
    try:
        done = run_manage(environ, "kiln", "setup")
        assert done.returncode == 0, done.stderr
        token = run_manage(environ, "create_api_token", "admin").stdout.strip().splitlines()[-1]
        host.web_start()
        # Stored while the store is up; thumbnailed once the worker starts, one after the other.
        ids = [
            host.upload(token, f"{n}.jpg", data)["id"] for n, data in enumerate(photos(24, seed=3, size=2400))
        ]
        worker = host.worker_start("worker-high")
        wait_for(
            lambda: any(image["status"] == "ready" for image in host.images(token, ids).values()),
            timeout=60,
            what="the first image to be ready",
        )
        server.stop()
        stopped_at = time.monotonic()

        with pytest.raises(urllib.error.HTTPError) as refused:
            host.upload(token, "during.jpg", photos(1, seed=4)[0])
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "60"
        assert "nothing was saved" in json.loads(refused.value.read())["error"]
        health = run_manage(environ, "jobs", "health", "--exit-code")
        assert health.returncode == 2, health.stdout  # critical
        assert "the media store s3://kiln-media/site at http://127.0.0.1:" in health.stdout
        assert "is unreachable" in health.stdout
        assert server.secret_key not in health.stdout + health.stderr

        statuses = host.images(token, ids)
        waiting = [image_id for image_id, image in statuses.items() if image["status"] == "pending"]
        assert waiting, "the outage should catch images still to be thumbnailed"
        time.sleep(max(0.0, 3 - (time.monotonic() - stopped_at)))
        server.start()

        # The first retry comes 10 s after the failure (KILN_THUMBNAIL_RETRY_DELAYS).
        ready = wait_for(lambda: all_ready(host, token, ids), timeout=120, what="every image to be ready")
        assert all(image["error"] is None for image in ready.values())
        assert worker.process.poll() is None, "no worker died"
        assert "Retry in 10s" in worker.log() or "retry: Retry in 10s" in worker.log(), worker.log()[-3000:]
        assert len(server.keys("site/originals/")) == 24  # the refused upload stored nothing
    finally:
        host.stop()
        server.stop()
