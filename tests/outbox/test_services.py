"""outbox/services.py: intents written in the caller's transaction, published after commit, swept, claimed;
against a real redis-server (no workers)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from outbox import services
from outbox.models import Intent

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def queued(client, queue: str = "default") -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def later(seconds: float = 3600):
    return timezone.now() + timedelta(seconds=seconds)


def test_an_intent_is_written_in_the_transaction_and_published_after_it_commits(
    app_broker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        intent = services.task_send("probe.record", args=["k", 0.0], headers={"x": 1})
        assert queued(app_broker.client()) == [], "nothing is published before the commit"
    (message,) = queued(app_broker.client())
    assert message["headers"]["id"] == intent.task_id
    assert message["headers"]["task"] == "probe.record"
    assert message["headers"][services.COPY_HEADER] == 1
    assert message["headers"]["x"] == 1
    intent.refresh_from_db()
    assert (intent.attempts, intent.published_at is not None, intent.error) == (1, True, "")


def test_a_rolled_back_transaction_leaves_no_intent_and_publishes_nothing(
    app_broker, django_capture_on_commit_callbacks
) -> None:
    def change_that_fails() -> None:
        with transaction.atomic():
            services.task_send("probe.record", args=["k", 0.0])
            raise RuntimeError("the request's change failed")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        change_that_fails()
    assert callbacks == []
    assert not Intent.objects.exists()
    assert queued(app_broker.client()) == []


def test_with_the_broker_down_the_intent_stays_unpublished_with_the_reason(
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        intent = services.task_send("probe.record", args=["k", 0.0])  # each test starts with no broker
    intent.refresh_from_db()
    assert (intent.attempts, intent.published_at) == (1, None)
    assert intent.error


def test_the_sweep_publishes_a_left_intent_with_its_task_id_once_the_grace_is_over(app_broker) -> None:
    intent = services.task_send("probe.record", args=["k", 0.0], countdown=60, publish=False)
    assert services.intents_sweep() == 0, "within the grace its own publish may still be under way"
    assert services.intents_sweep(now=later()) == 1
    assert services.intents_sweep(now=later()) == 0, "published once"
    (message,) = queued(app_broker.client())
    assert message["headers"]["id"] == intent.task_id
    assert message["headers"]["eta"] == intent.eta.isoformat(), "the countdown is kept as its moment"
    intent.refresh_from_db()
    assert intent.published_at is not None


def test_a_failed_attempt_is_sent_again_as_the_next_copy_only_after_the_grace(app_broker) -> None:
    intent = services.task_send("probe.record", args=["k", 0.0], publish=False)
    Intent.objects.filter(pk=intent.pk).update(attempts=1, attempted_at=timezone.now(), error="timed out")
    assert services.intents_sweep(now=timezone.now() + timedelta(seconds=1)) == 0
    assert services.intents_sweep(now=later()) == 1
    (message,) = queued(app_broker.client())
    assert (message["headers"]["id"], message["headers"][services.COPY_HEADER]) == (intent.task_id, 2)


def test_a_copy_is_claimed_by_one_publisher_only(app_broker) -> None:
    intent = services.task_send("probe.record", args=["k", 0.0], publish=False)
    # Two sweeps (two hosts) read the same row; the first claim wins, the second finds it taken.
    first = services.intent_publish(intent_id=intent.pk, seen_attempts=0)
    second = services.intent_publish(intent_id=intent.pk, seen_attempts=0)
    assert (first, second) == (services.Published.SENT, services.Published.TAKEN)
    assert services.intent_publish(intent_id=intent.pk) is services.Published.TAKEN, "published already"
    assert len(queued(app_broker.client())) == 1


def test_a_worker_runs_the_first_copy_it_claims_and_its_redeliveries_but_no_other_copy() -> None:
    intent = services.task_send("probe.record", args=["k", 0.0], publish=False)
    assert services.intent_run_claim(task_id=intent.task_id, copy=2)
    assert services.intent_run_claim(task_id=intent.task_id, copy=2), "a redelivery of the copy that ran"
    assert not services.intent_run_claim(task_id=intent.task_id, copy=1), "the slow first copy"
    intent.refresh_from_db()
    assert (intent.ran_copy, intent.duplicates) == (2, 1)
    assert intent.published_at is not None, "a copy reached a worker: it was published"
    assert services.intents_sweep(now=later()) == 0
    assert services.intent_run_claim(task_id="purged-long-ago", copy=3), "no row: nothing to compare"


def test_beat_keeps_one_unpublished_intent_per_entry_and_publishes_it_at_the_next_slot(app_broker) -> None:
    def send():
        return services.beat_send(
            entry_name="probe: often", task_name="probe.record", args=["k", 0.0], kwargs={}, options={}
        )

    first = send()
    # Its publish failed an hour ago (the broker was down).
    Intent.objects.filter(pk=first.pk).update(attempts=1, attempted_at=timezone.now() - timedelta(hours=1))
    assert send().pk == first.pk, "the next slot publishes the waiting one instead of adding another"
    assert Intent.objects.count() == 1
    (message,) = [m for m in queued(app_broker.client()) if m["headers"][services.COPY_HEADER] == 2]
    assert message["headers"]["id"] == first.task_id
    assert message["headers"]["celery_beat_task"] is True
    assert send().pk != first.pk, "once published, the next slot is a new intent"
