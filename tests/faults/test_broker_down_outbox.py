"""Fault 5b: every kind of task asked for while Redis is stopped runs once it is back, exactly once. An
admin's purge run, a retry of a failed job, beat's periodic slot and an upload are all made with Redis down;
the outbox (purges, retries, beat) and the image sweep (uploads) publish them when it returns. Sweeps run
every few seconds here instead of every half minute: the same path, sooner.

And "slow, not down": a publish that raised but had reached Redis, followed by the sweep's second copy,
runs the task once (the worker skips the copy it did not claim first)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.ledger import Ledger
from tests.support.processes import running_workers, start_redis, wait_for
from tests.support.stack import Stack, migrated_environ, run_manage, running_stack
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.faults

BEAT_ENTRY = "thumbnails: dispatch images left pending"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path / "var",
        KILN_PENDING_SWEEP_SECONDS="3",
        KILN_OUTBOX_SWEEP_SECONDS="3",
        KILN_OUTBOX_GRACE_SECONDS="2",
        # The elected beat stops when its leader cannot renew the lock in Redis (within a heartbeat of an
        # outage, 5 s by default), and sends each overdue entry once when it is elected again. The slots it
        # sends before it notices are what the outbox keeps: a heartbeat longer than this test's outage makes
        # every slot of the outage such a slot, so the test sees one for sure.
        KILN_BEAT_LOCK_SECONDS="1200",
        KILN_BEAT_HEARTBEAT_SECONDS="500",
    ) as stack:
        stack.wait_until_running()
        yield stack


def shell(stack: Stack, code: str) -> dict:
    """Run Python in the stack's Django (its own database) and read the JSON it prints last."""
    result = stack.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


FAILED_JOB = """
import json
from django.utils import timezone
from jobs.models import Job
job = Job.objects.create(task_id="failed-before-the-outage", task_name="jobs.tasks.alerts_check", queue="default",
    state=Job.State.FAILED, args=[], kwargs={}, finished_at=timezone.now())
print(json.dumps({"id": job.id}))
"""

BEAT_INTENTS = f"""
import json
from outbox.models import Intent
print(json.dumps({{"unpublished": list(Intent.objects.filter(key="beat:{BEAT_ENTRY}", published_at__isnull=True)
    .values_list("task_id", flat=True))}}))
"""


def outcome(failed_job: int, image_id: int, beat_task_ids: list[str]) -> str:
    return f"""
import json
from jobs.models import Job
from outbox.models import Intent
from purge.models import PurgeRun
run = PurgeRun.objects.order_by("-id").first()
retried = list(Job.objects.filter(retry_of_id={failed_job}).values("task_id", "state", "attempts"))
beat = list(Job.objects.filter(task_id__in={beat_task_ids!r}).values("task_id", "state", "attempts"))
renditions = [job for job in Job.objects.filter(task_name="thumbnails.tasks.rendition_generate").values("args", "state")
    if job["args"][:1] == [{image_id}]]
intents = list(Intent.objects.values("task_name", "published_at", "ran_copy", "duplicates"))
print(json.dumps({{"run": run and {{"state": run.state, "tasks": run.tasks}}, "retried": retried, "beat": beat,
    "renditions": renditions, "intents": intents}}, default=str))
"""


def test_a_purge_a_retry_a_beat_slot_and_an_upload_made_while_redis_is_down_each_run_once_after(
    stack: Stack,
) -> None:
    token = stack.manage("create_api_token", "admin").stdout.strip().splitlines()[-1]
    failed_job = shell(stack, FAILED_JOB)["id"]
    assert "stopped" in stack.manage("kiln", "ctl", "stop", "redis").stdout

    requested = stack.manage("purge", "run", "--policy", "orphan_media", "--dry-run")
    assert requested.returncode == 0, requested.stderr
    retried = stack.manage("jobs", "retry", str(failed_job))
    assert retried.returncode == 0, retried.stderr
    assert "1 wait for the broker" in retried.stdout
    status, image = stack.upload(token, "offline.jpg", jpeg_bytes(color=(10, 90, 200)))
    assert (status, image["status"]) == (202, "pending")
    # Beat's slots come every 3 s: one of the image sweep's is written to the outbox, not lost.
    wait_for(
        lambda: len(shell(stack, BEAT_INTENTS)["unpublished"]) == 1,
        timeout=30,
        interval=1,
        what=f"beat to keep a slot of {BEAT_ENTRY!r} in the outbox while Redis is down",
    )
    health = stack.manage("jobs", "health")
    assert "unpublished in the outbox" not in health.stdout, "young intents are no warning"

    # The slot kept during the outage (beat keeps adding new ones once Redis is back: not these).
    beat_ids = shell(stack, BEAT_INTENTS)["unpublished"]
    assert len(beat_ids) == 1
    assert "started" in stack.manage("kiln", "ctl", "start", "redis").stdout

    last: dict = {}

    def settled() -> dict | None:
        state = last["state"] = shell(stack, outcome(failed_job, image["id"], beat_ids))
        done = (
            state["run"] == {"state": "done", "tasks": 1}
            and [job["state"] for job in state["retried"]] == ["succeeded"]
            and [job["state"] for job in state["beat"]] == ["succeeded"]
            and [job["state"] for job in state["renditions"]] == ["succeeded"]
        )
        return state if done else None

    state = wait_for(
        settled,
        timeout=90,
        interval=1,
        what=lambda: f"every task asked for while Redis was down to run: {last}",
    )
    # Exactly once: one job per task id (the history's records), each run by its first copy only.
    assert all(job["attempts"] == 1 for job in state["retried"] + state["beat"])
    assert all(intent["duplicates"] == 0 for intent in state["intents"])
    assert [job["args"] for job in state["renditions"]] == [[image["id"]]]


SLOW_PUBLISH = """
import json
from datetime import timedelta
from django.utils import timezone
from outbox import services
from outbox.models import Intent
intent = services.task_send("probe.record", args=["slow-once", 0.0], queue="default", publish=False)
assert services.intent_publish(intent_id=intent.pk) is services.Published.SENT
# What a publish that timed out after reaching Redis leaves behind: attempted, unconfirmed, an error; and
# the grace is over.
Intent.objects.filter(pk=intent.pk).update(published_at=None, error="timed out",
    created_at=timezone.now() - timedelta(hours=1), attempted_at=timezone.now() - timedelta(hours=1))
print(json.dumps({"id": intent.pk, "sent": services.intents_sweep()}))
"""

INTENT = """
import json
from outbox.models import Intent
print(json.dumps(Intent.objects.values("attempts", "ran_copy", "duplicates", "published_at").get(pk={id}), default=str))
"""


def test_a_publish_that_raised_after_reaching_redis_and_the_sweeps_copy_run_the_task_once(
    tmp_path: Path,
) -> None:
    redis = start_redis(tmp_path / "redis")
    try:
        environ = migrated_environ(tmp_path / "var", redis.url)
        published = json.loads(
            run_manage(environ, "shell", "-c", SLOW_PUBLISH).stdout.strip().splitlines()[-1]
        )
        assert published["sent"] == 1, "the sweep sent the second copy"
        assert redis.client().llen("default") == 2, "both copies wait in the queue"
        ledger = Ledger(redis)
        with running_workers(("worker-default", environ)):

            def both_taken() -> dict | None:
                answer = run_manage(environ, "shell", "-c", INTENT.format(id=published["id"]))
                intent = json.loads(answer.stdout.strip().splitlines()[-1])
                taken = intent["duplicates"] == 1 and redis.client().llen("default") == 0
                # Both copies are out of the queue, the skipped one is counted: no run can come after the
                # one the ledger shows.
                return intent if taken and ledger.runs() else None

            intent = wait_for(both_taken, timeout=60, interval=0.5, what="the worker to take both copies")
        assert ledger.runs_per_key()["slow-once"] == 1
        assert (intent["attempts"], intent["ran_copy"] in (1, 2), intent["published_at"] is not None) == (
            2,
            True,
            True,
        )
    finally:
        redis.stop()
