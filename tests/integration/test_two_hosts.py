"""Two hosts that share nothing but the services: two copies of Kiln's web and pools on loopback, each with its own
hostname and data directory, sharing one Redis, one database and one S3 bucket (a real SeaweedFS server), and
no filesystem (each host's MEDIA_ROOT stays empty).

On SQLite both hosts open the same database file, standing in for the shared PostgreSQL; .ci/run repeats this
test on PostgreSQL (a scratch database, dropped after).
"""

from __future__ import annotations

import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Probe
from tests.support.hosts import Host, all_ready, jobs_by_image, photos, shared_database
from tests.support.processes import (
    RedisServer,
    kill_worker,
    stack_environment,
    wait_for,
    workers_describe,
)
from tests.support.s3 import S3Server
from tests.support.stack import run_manage

pytestmark = [pytest.mark.processes, pytest.mark.database]

SECRET_KEY = "two-hosts-test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PROBE_SECONDS = 4.0


@pytest.fixture
def hosts(tmp_path: Path, broker: RedisServer, s3_server: S3Server) -> Iterator[tuple[Host, Host, str]]:
    prefix = f"hosts-{secrets.token_hex(4)}"
    with shared_database(tmp_path) as database_url:
        made = []
        for name in ("host-a", "host-b"):
            environ = stack_environment(
                tmp_path / name,
                broker.url,
                DATABASE_URL=database_url,
                DEBUG="false",
                SECRET_KEY=SECRET_KEY,
                ALLOWED_HOSTS="127.0.0.1",
                MEDIA_ROOT=str(tmp_path / name / "media"),
                KILN_WORKER_DEAD_AFTER_SECONDS="3",
                KILN_HIGH_MIN_PROCESSES="2",
                KILN_HIGH_MAX_PROCESSES="4",
                KILN_UPLOADS_PER_MINUTE="1000",
                **s3_server.environment(prefix),
            )
            made.append(Host(name=name, environ=environ))
        a, b = made
        done = run_manage(a.environ, "kiln", "setup")
        assert done.returncode == 0, done.stderr
        done = run_manage(a.environ, "create_api_token", "admin")
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip().splitlines()[-1]
        try:
            yield a, b, token
        except BaseException:
            workers_describe([*a.workers, *b.workers])
            raise
        finally:
            a.stop()
            b.stop()
        # Neither host ever wrote media to its own disk.
        for host in (a, b):
            assert not any(path.is_file() for path in host.media_root.rglob("*")), host.name


def test_uploads_through_one_host_are_thumbnailed_by_the_other_and_served_by_both(hosts) -> None:
    a, b, token = hosts
    a.web_start()
    b.web_start()
    b.worker_start("worker-high")  # host A runs no worker at all
    ids = [a.upload(token, f"a-{n}.jpg", data)["id"] for n, data in enumerate(photos(6, seed=1))]
    ready = wait_for(lambda: all_ready(a, token, ids), timeout=120, what="host B's workers to thumbnail them")
    from_b = b.images(token, ids)
    for image_id in ids:
        assert from_b[image_id]["status"] == "ready"
        for answer in (ready[image_id], from_b[image_id]):
            thumb = answer["renditions"]["thumb"]
            with urllib.request.urlopen(thumb["url"], timeout=10) as served:  # a signed URL of the bucket
                assert len(served.read()) == thumb["bytes"]
    # The workers write the history a moment after the job (off its hot path).
    expected = {image_id: [("high@host-b", "succeeded")] for image_id in ids}
    wait_for(
        lambda: {image_id: jobs_by_image(a).get(image_id) for image_id in ids} == expected,
        timeout=30,
        interval=1,
        what=lambda: f"each image's one job, run by host B, in the shared history: {jobs_by_image(a)}",
    )


def test_a_killed_hosts_jobs_are_finished_by_the_other_host_nothing_lost_nothing_run_twice_at_once(
    hosts, broker: RedisServer, probe: Probe
) -> None:
    a, b, token = hosts
    a.web_start()
    victim = b.worker_start("worker-high")
    keys = [f"slow-{n}" for n in range(4)]
    for key in keys:
        probe.send(key, queue="high", sleep=PROBE_SECONDS)
    ids = [a.upload(token, f"b-{n}.jpg", data)["id"] for n, data in enumerate(photos(8, seed=2))]
    wait_for(
        lambda: sum(record["hostname"] == "high@host-b" for record in probe.records()) >= 2,
        timeout=60,
        what="host B to start the slow jobs",
    )
    kill_worker(victim.pid)
    killed_at = time.time()
    b.workers.remove(victim)
    started_on_b = {record["key"] for record in probe.records() if record["hostname"] == "high@host-b"}
    finished_on_b = {record["key"] for record in probe.finished()}
    assert started_on_b - finished_on_b, "the kill should catch at least one slow job mid-run"

    a.worker_start("worker-high")
    wait_for(
        lambda: all_ready(a, token, ids),
        timeout=180,
        # Which images are left, and what Redis still holds, should this ever time out.
        what=lambda: (
            f"host A to finish every image: {[(i, im['status']) for i, im in a.images(token, ids).items()]}, "
            f"unacked {broker.client().hlen('unacked')}, queue high {broker.client().llen('high')}, "
            f"keys {sorted(broker.client().keys('kiln:*'))[:20]}, history {jobs_by_image(a)}"
        ),
    )
    wait_for(
        lambda: {record["key"] for record in probe.finished()} >= set(keys),
        timeout=120,
        what="host A to finish every slow job",
    )
    runs: dict[str, list[dict]] = {}
    for record in probe.records():
        runs.setdefault(record["key"], []).append(record)
    for key in keys:
        on_a = [run for run in runs[key] if run["hostname"] == "high@host-a"]
        on_b = [run for run in runs[key] if run["hostname"] == "high@host-b"]
        if key in started_on_b - finished_on_b:
            # Cut short by the kill, run again on A: only after B's run had died, never at the same time.
            assert len(on_a) == 1, runs[key]
            assert on_a[0]["started_at"] > killed_at, runs[key]
        else:
            assert len(on_a) + len(on_b) == 1, runs[key]  # finished on B, or never reached B: run once
    wait_for(
        lambda: all(
            any(state == "succeeded" for _, state in jobs_by_image(a).get(image_id, [])) for image_id in ids
        ),
        timeout=30,
        interval=1,
        what=lambda: f"each image's job succeeded in the shared history: {jobs_by_image(a)}",
    )
    assert broker.client().hlen("unacked") == 0
