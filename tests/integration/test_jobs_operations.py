"""`manage.py jobs …` against a real Redis and both pools as kiln.conf starts them, with job history on."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from config.celery import app
from tests.support.broker import Probe, empty_broker
from tests.support.probe_tasks import FAULT_KEY
from tests.support.processes import (
    RedisServer,
    Worker,
    running_workers,
    start_worker,
    wait_for,
)
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.processes


@dataclass
class Pools:
    environ: dict[str, str]
    high: Worker
    default: Worker

    def jobs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = run_manage(self.environ, "jobs", *args)
        if check:
            assert result.returncode == 0, f"jobs {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def shell(self, code: str) -> str:
        result = run_manage(self.environ, "shell", "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def status(self) -> dict:
        return json.loads(self.jobs("status", "--json").stdout)

    def queue(self, name: str) -> dict:
        return next(q for q in self.status()["queues"] if q["name"] == name)

    def consuming(self, pool: str) -> list[str] | None:
        """The queues the pool's worker consumes; None if it did not answer within the report's second."""
        workers = self.status()["pools"].get(pool, [])
        return workers[0]["consuming"] if workers else None

    def scale(self, *args: str) -> None:
        """`jobs scale`, again if it was refused because the worker did not answer within a second (busy)."""
        wait_for(
            lambda: self.jobs("scale", *args, check=False).returncode == 0,
            timeout=20,
            interval=1,
            what=f"jobs scale {' '.join(args)} to succeed",
        )


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Pools]:
    empty_broker(redis_server)
    environ = migrated_environ(tmp_path_factory.mktemp("jobs") / "var", redis_server.url)
    with running_workers(("worker-high", environ), ("worker-default", environ)) as (high, default):
        pools = Pools(environ, high, default)
        yield pools
        # A test may have replaced a worker by a restarted one: stop whatever runs now.
        pools.high.stop()
        pools.default.stop()


def send(probe: Probe, task: str, key: str, queue: str) -> None:
    app.send_task(task, args=[key], queue=queue, connection=probe.connection, ignore_result=True)


def test_a_failed_job_is_listed_with_its_traceback_and_retry_runs_it_again_on_its_queue(
    pools: Pools, probe: Probe, broker: RedisServer
) -> None:
    broker.client().set(FAULT_KEY, "1")
    send(probe, "probe.flaky", "flaky-1", "high")
    listed = wait_for(
        lambda: (
            "flaky" in (out := pools.jobs("failed", "--task", "probe.flaky", "--traceback").stdout) and out
        ),
        timeout=30,
        what="the failing job to appear in `jobs failed`",
        interval=0.5,
    )
    assert "RuntimeError: fault injected (flaky-1)" in listed
    assert "Traceback (most recent call last)" in listed
    assert " high " in listed
    old_id = int(listed.split()[0])

    broker.client().delete(FAULT_KEY)
    retried = pools.jobs("retry", "--task", "probe.flaky")
    assert "1 retried, 0 refused" in retried.stdout
    wait_for(lambda: probe.record("flaky-1"), timeout=30, what="the retried job to run")

    new = json.loads(
        wait_for(
            lambda: (
                (
                    out := pools.shell(
                        "import json; from jobs.models import Job; "
                        f"j = Job.objects.filter(retry_of_id={old_id}, state='succeeded').first(); "
                        "print(json.dumps(j and {'queue': j.queue, 'args': j.args, 'task': j.task_name, "
                        "'worker': j.worker, 'wait': j.wait_seconds, 'run': j.run_seconds}))"
                    )
                )
                != "null"
                and out
            ),
            timeout=30,
            what="the retry's record to end succeeded",
            interval=0.5,
        )
    )
    assert new["queue"] == "high"
    assert new["args"] == ["flaky-1"]
    assert new["task"] == "probe.flaky"
    assert new["worker"].startswith("high@")
    assert new["wait"] is not None
    assert new["run"] is not None
    assert "no failed jobs" in pools.jobs("failed").stdout
    audit = pools.shell(
        "from jobs.models import AuditEntry as A; a = A.objects.get(action='retry'); print(a.actor, a.count)"
    )
    assert audit.startswith("shell:")
    assert audit.endswith(" 1")


def test_pause_stops_taking_jobs_clear_drops_only_its_queue_and_resume_runs_the_rest(
    pools: Pools, probe: Probe
) -> None:
    assert "paused" in pools.jobs("pause", "high").stdout
    assert "paused" in pools.jobs("pause", "default").stdout
    # The pause reaches a busy worker by broadcast, which the command waits for 1 s only: jobs sent before
    # the worker acted on it would be taken. Send them once both workers say they consume nothing.
    wait_for(
        lambda: all(pools.consuming(pool) == [] for pool in ("high", "default")),
        timeout=20,
        what="both workers to stop consuming",
    )
    for n in range(5):
        probe.send(f"h{n}", queue="high")
        probe.send(f"d{n}", queue="default")
    assert pools.queue("high")["depth"] == 5
    queue = pools.queue("default")
    assert queue["depth"] == 5
    assert queue["paused"]
    assert queue["worker_status"] == "paused"
    assert probe.records() == [], "a paused queue was consumed"

    refused = pools.jobs("clear", "high", check=False)  # no --yes and no answer on stdin
    assert refused.returncode != 0
    assert pools.queue("high")["depth"] == 5
    assert "5 job(s) dropped from high" in pools.jobs("clear", "high", "--yes").stdout
    assert pools.queue("high")["depth"] == 0
    assert pools.queue("default")["depth"] == 5

    pools.jobs("resume", "default")
    wait_for(lambda: len(probe.records()) == 5, timeout=30, what="the five default jobs to run after resume")
    assert {record["queue"] for record in probe.records()} == {"default"}
    pools.jobs("resume", "high")
    probe.send("h-after", queue="high")
    wait_for(lambda: probe.record("h-after"), timeout=30, what="high to be consumed again after resume")


def test_a_paused_queue_stays_paused_when_its_worker_restarts(pools: Pools, probe: Probe) -> None:
    pools.jobs("pause", "default")
    pools.default.stop()
    pools.default = start_worker("worker-default", pools.environ)
    probe.send("while-paused", queue="default")
    # The restarted worker reports itself with `default` configured but not consumed.
    worker = wait_for(
        lambda: next(iter(pools.status()["pools"].get("default", [])), None),
        timeout=20,
        what="the restarted worker-default to answer",
    )
    assert worker["consuming"] == []
    assert pools.queue("default")["depth"] == 1
    assert probe.records() == []
    pools.jobs("resume", "default")
    wait_for(lambda: probe.record("while-paused"), timeout=30, what="the job to run after resume")


def test_scale_grows_a_fixed_pool_and_raises_an_autoscaled_pools_floor(pools: Pools) -> None:
    pools.scale("default", "3")
    wait_for(lambda: pools.default.pool_size() == 3, timeout=20, what="worker-default to grow to 3 processes")
    pools.scale("high", "6", "--min", "4")
    wait_for(
        lambda: pools.high.pool_size() == 4, timeout=20, what="worker-high to grow to its new floor of 4"
    )
    reported = wait_for(
        lambda: (answered := pools.status()["pools"]).keys() >= {"high", "default"} and answered,
        timeout=20,
        what="both pools to answer jobs status",
    )
    assert reported["high"][0]["autoscale"] == [6, 4]
    assert reported["default"][0]["processes"] == 3
    pools.scale("default", "2")
    wait_for(lambda: pools.default.pool_size() == 2, timeout=20, what="worker-default to shrink back to 2")
    actions = pools.shell(
        "from jobs.models import AuditEntry as A; print(sorted(set(A.objects.values_list('action', flat=True))))"
    )
    assert "scale" in actions
    assert "pause" in actions
    assert "clear" in actions


def test_a_resume_missed_while_cut_off_from_redis_is_caught_up_on_reconnection(
    pools: Pools, probe: Probe, broker: RedisServer
) -> None:
    pools.jobs("pause", "default")
    probe.send("after-reconnect", queue="default")
    assert pools.queue("default")["depth"] == 1
    # The resume broadcast goes nowhere (as if the worker were cut off), then every connection drops.
    broker.client().srem("kiln:paused-queues", "default")
    broker.client().client_kill_filter(_type="normal", skipme=True)
    wait_for(
        lambda: probe.record("after-reconnect"),
        timeout=60,
        what="the worker to consume default again after reconnecting",
    )


COUNTED = """
import json
from metrics.models import Tally
from metrics.tally import TOTAL
rows = Tally.objects.filter(span=TOTAL, task_name__in=["probe.count", "probe.fail"])
counts = {}
for row in rows:
    key = f"{row.task_name} {row.measure}" + (f" {row.label}" if row.measure == "failed" else "")
    if not row.measure.endswith("_bucket"):
        counts[key] = counts.get(key, 0) + row.value
    else:
        counts[f"{row.task_name} {row.measure}"] = counts.get(f"{row.task_name} {row.measure}", 0) + row.value
    counts.setdefault("hosts", []).append(row.hostname)
minutes = Tally.objects.filter(span=60, task_name="probe.count", measure="succeeded").count()
print(json.dumps({**counts, "minute rows": minutes}))
"""


def test_jobs_are_counted_over_time_by_the_processes_that_publish_and_run_them(pools: Pools) -> None:
    # Published from a Kiln process (as the web or beat would), run by both pools: each process adds its
    # own counts to the shared rows.
    pools.shell(
        "from config.celery import app; from jobs.history import recorder\n"
        "for n in range(6): app.send_task('probe.count', kwargs={'sleep': 0.05}, queue='default')\n"
        "for n in range(2): app.send_task('probe.fail', args=[f'm{n}'], queue='high')\n"
        "recorder.flush(); print('sent')"
    )

    def counted() -> dict | None:
        counts = json.loads(pools.shell(COUNTED))
        done = counts.get("probe.count succeeded") == 6 and counts.get("probe.fail failed ValueError") == 2
        return counts if done else None

    counts = wait_for(counted, timeout=30, what="the workers to count 6 successes and 2 failures")
    assert counts["probe.count sent"] == 6
    assert counts["probe.count received"] == 6
    assert counts["probe.count started"] == 6
    assert counts["probe.count run_bucket"] == 6
    assert counts["probe.count wait_bucket"] == 6
    assert counts["probe.count run_seconds"] >= 6 * 0.05
    assert counts["probe.fail started"] == 2
    assert counts["minute rows"] >= 1
    assert {host.split("@")[0] for host in counts["hosts"]} >= {"default", "high"}
