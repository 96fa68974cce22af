"""/metrics against a real worker: celery-exporter's counters and gauges carry the names, queues and hosts a
pool really gives them, a worker that stops reads celery_worker_up 0, and promtool accepts the scrape."""

from __future__ import annotations

import json
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.broker import empty_broker
from tests.support.processes import RedisServer, start_worker, wait_for
from tests.support.prometheus import promtool_check_metrics
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.processes

# In a Kiln process, as gunicorn would answer Prometheus: the view, from an allowed address.
SCRAPE = """
from django.test import Client
response = Client().get("/metrics", HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
assert response.status_code == 200, response.status_code
print(response.content.decode().replace("\\n", "\\\\n"))
"""
PUBLISH = """
from config.celery import app
from jobs.history import recorder
for n in range(3):
    app.send_task("probe.count", kwargs={"sleep": 0.05}, queue="high")
recorder.flush()
print("sent")
"""


def shell(environ: dict[str, str], code: str) -> str:
    result = run_manage(environ, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def scrape(environ: dict[str, str]) -> str:
    return shell(environ, SCRAPE).replace("\\n", "\n")


def samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, labels as sorted JSON) -> value."""
    return {
        (sample.name, json.dumps(sample.labels, sort_keys=True)): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, str], float], metric: str, /, **labels: str) -> float | None:
    return found.get((metric, json.dumps(labels, sort_keys=True)))


def test_a_real_worker_is_counted_under_its_node_name_and_reads_0_once_stopped(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> None:
    empty_broker(redis_server)
    environ = migrated_environ(tmp_path_factory.mktemp("prometheus") / "var", redis_server.url)
    node = f"high@{socket.gethostname()}"  # kiln.conf starts worker-high as high@%h
    task = {"name": "probe.count", "queue_name": "high"}
    worker = start_worker("worker-high", environ)
    try:
        shell(environ, PUBLISH)

        def counted() -> dict | None:
            found = samples(scrape(environ))
            done = value(found, "celery_task_succeeded_total", hostname=node, **task) == 3
            return found if done else None

        found = wait_for(counted, timeout=30, what="/metrics to count the 3 jobs the worker ran")
        assert value(found, "celery_task_sent_total", hostname=socket.gethostname(), **task) == 3
        for name in ("celery_task_received_total", "celery_task_started_total"):
            assert value(found, name, hostname=node, **task) == 3, name
        assert value(found, "celery_task_failed_total", hostname=node, exception="", **task) == 0
        assert value(found, "celery_task_runtime_count", hostname=node, **task) == 3
        assert value(found, "celery_task_runtime_sum", hostname=node, **task) >= 3 * 0.05
        assert value(found, "celery_task_queue_wait_time_count", hostname=node, **task) == 3
        assert value(found, "celery_queue_length", queue_name="high") == 0

        # The worker answers the snapshot's broadcast within its second, unless busy: ask again then.
        def answering() -> dict | None:
            found = samples(scrape(environ))
            return found if value(found, "celery_worker_up", hostname=node) == 1 else None

        found = wait_for(answering, timeout=20, what=f"{node} to answer with celery_worker_up 1")
        assert value(found, "celery_active_worker_count", queue_name="high") == 1
        assert value(found, "celery_active_process_count", queue_name="high") >= 2  # KILN_HIGH_MIN_PROCESSES
        assert value(found, "celery_active_worker_count", queue_name="default") == 0

        assert promtool_check_metrics(scrape(environ)) == set()
    finally:
        worker.stop()

    found = samples(scrape(environ))
    assert value(found, "celery_worker_up", hostname=node) == 0
    assert value(found, "celery_worker_tasks_active", hostname=node) == 0
    # Counters outlive the worker: they are rows in the database, not its memory.
    assert value(found, "celery_task_succeeded_total", hostname=node, **task) == 3
