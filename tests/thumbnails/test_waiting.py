"""Why a pending image waits (thumbnails/waiting.py): pure rules, and the broker's conditions read from a
real Redis with real worker leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery import Celery

from broker.lease import WorkerLease
from broker.queues import CONSUMERS_PREFIX, QueueConditions, queue_conditions, queue_mark_paused
from tests.support.processes import wait_for
from thumbnails import waiting
from thumbnails.models import Image

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
UP = QueueConditions(broker_ok=True, without_workers=frozenset())


def pending(started_seconds_ago: float | None = None) -> Image:
    started = None if started_seconds_ago is None else NOW - timedelta(seconds=started_seconds_ago)
    return Image(status=Image.Status.PENDING, started_at=started)


def test_an_image_no_worker_has_begun_is_queued() -> None:
    assert waiting.image_wait(pending(), UP, "high", now=NOW) == waiting.QUEUED


def test_an_image_a_worker_began_within_the_time_limit_is_processing() -> None:
    assert waiting.image_wait(pending(5), UP, "high", now=NOW) == waiting.PROCESSING


def test_an_image_begun_longer_ago_than_the_time_limit_is_queued_again() -> None:
    # high's hard limit is 120 s: the attempt is over, a retry or a redelivery waits in the queue.
    assert waiting.image_wait(pending(121), UP, "high", now=NOW) == waiting.QUEUED


def test_a_paused_queue_says_so_but_a_job_in_flight_still_processes() -> None:
    paused = QueueConditions(broker_ok=True, paused=frozenset({"high"}), without_workers=frozenset())
    assert waiting.image_wait(pending(), paused, "high", now=NOW) == waiting.PAUSED
    assert waiting.image_wait(pending(5), paused, "high", now=NOW) == waiting.PROCESSING


def test_a_queue_without_a_live_worker_says_no_worker_even_for_an_image_begun_a_moment_ago() -> None:
    # The worker that began it died: nothing is processing it.
    nobody = QueueConditions(broker_ok=True, without_workers=frozenset({"high"}))
    assert waiting.image_wait(pending(), nobody, "high", now=NOW) == waiting.NO_WORKER
    assert waiting.image_wait(pending(5), nobody, "high", now=NOW) == waiting.NO_WORKER


def test_paused_is_said_before_no_worker() -> None:
    both = QueueConditions(broker_ok=True, paused=frozenset({"high"}), without_workers=frozenset({"high"}))
    assert waiting.image_wait(pending(), both, "high", now=NOW) == waiting.PAUSED


def test_an_unreachable_broker_is_said_first() -> None:
    down = QueueConditions(broker_ok=False)
    assert waiting.image_wait(pending(5), down, "high", now=NOW) == waiting.BROKER_UNREACHABLE


def test_without_worker_leases_no_absence_of_workers_is_claimed() -> None:
    unknown = QueueConditions(broker_ok=True, without_workers=None)
    assert waiting.image_wait(pending(), unknown, "high", now=NOW) == waiting.QUEUED


@pytest.mark.parametrize("status", [Image.Status.READY, Image.Status.FAILED])
def test_only_a_pending_image_waits(status: str) -> None:
    assert waiting.image_wait(Image(status=status), UP, "high", now=NOW) is None


def test_thumbnails_wait_on_the_queue_their_task_is_routed_to() -> None:
    assert waiting.thumbnail_queue() == "high"


def test_a_live_lease_makes_its_queues_consumed_until_it_is_returned_or_expires(app_broker) -> None:
    # Not the current app: the conditions are read through Kiln's app, as in the site.
    app = Celery("lease-test", broker=app_broker.url, set_as_current=False)
    lease = WorkerLease(app, "high@a", dead_after=30, queues=("high",))
    assert queue_conditions(["high", "default"], leases=True).without_workers == {"high", "default"}
    lease.start()
    wait_for(
        lambda: app_broker.client().exists(CONSUMERS_PREFIX + "high"), timeout=10, what="the lease to renew"
    )
    conditions = queue_conditions(["high", "default"], leases=True)
    assert conditions.broker_ok
    assert conditions.without_workers == {"default"}
    # A worker killed without returning its lease: its entry outlives it only until the lease expires.
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=31)):
        assert queue_conditions(["high"], leases=True).without_workers == {"high"}
    lease.stop()
    assert queue_conditions(["high"], leases=True).without_workers == {"high"}


def test_the_paused_set_is_read_with_the_consumers(app_broker) -> None:
    queue_mark_paused("default", True)
    conditions = queue_conditions(["high", "default"], leases=False)
    assert conditions.paused == {"default"}
    assert conditions.without_workers is None


def test_an_unreachable_broker_gives_conditions_saying_so(monkeypatch) -> None:
    from celery import current_app

    # Whichever app is current when this runs, it points at a socket nobody listens on.
    monkeypatch.setattr(current_app.conf, "broker_url", "redis+socket:///nonexistent/kiln-waiting-test.sock")
    assert queue_conditions(["high"], leases=True) == QueueConditions(broker_ok=False)
