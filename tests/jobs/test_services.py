"""jobs/services.py: the operator's verbs, called directly, against a real redis-server (no workers)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from broker import queues as broker_queues
from config.celery import app
from jobs import services
from jobs.history import RETRY_OF_HEADER
from jobs.models import AuditEntry, Job
from outbox import services as outbox
from tests.conftest import app_connections_forget

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def failed(task_id: str, *, queue: str = "high", args: list | None = None, **fields) -> Job:
    fields.setdefault("finished_at", timezone.now())
    return Job.objects.create(
        task_id=task_id, task_name="probe.record", queue=queue, state=Job.State.FAILED,
        args=args if args is not None else [task_id, 0.0], **fields,
    )  # fmt: skip


def queued_messages(client, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_retry_publishes_the_same_task_and_arguments_on_the_same_queue_linked_to_the_old_job(
    app_broker, admin_user
) -> None:
    job = failed("old-1", queue="default", args=["k", 1.5])
    result = services.jobs_retry(jobs=Job.objects.filter(pk=job.pk), user=admin_user, description="test")
    assert result.refused == []
    ((old_id, new_task_id),) = result.retried
    assert old_id == job.pk
    (message,) = queued_messages(app_broker.client(), "default")
    assert message["headers"]["task"] == "probe.record"
    assert message["headers"]["id"] == new_task_id
    assert message["headers"][RETRY_OF_HEADER] == job.pk
    job.refresh_from_db()
    assert job.retried_at is not None, "it leaves the failed list"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.user, entry.count, entry.details) == (
        "retry",
        admin_user,
        1,
        {"jobs": [job.pk]},
    )


def test_a_job_is_retried_once_however_often_it_is_asked(app_broker) -> None:
    job = failed("old-1")
    services.jobs_retry(jobs=Job.objects.filter(pk=job.pk))
    again = services.jobs_retry(jobs=Job.objects.filter(pk=job.pk))
    assert (again.retried, again.refused) == ([], [])
    assert app_broker.client().llen("high") == 1


def test_a_job_whose_arguments_were_not_kept_is_refused_with_the_reason(app_broker) -> None:
    job = failed("big-1", args=[], args_truncated=True)
    result = services.jobs_retry(jobs=Job.objects.filter(pk=job.pk))
    assert result.refused == [(job.pk, "its arguments were not kept (too large, or not plain JSON)")]
    assert app_broker.client().llen("high") == 0


def test_with_the_broker_down_a_retry_waits_in_the_outbox_and_the_sweep_publishes_it(broker) -> None:
    job = failed("old-1")  # each test starts with no broker (tests/conftest.py)
    result = services.jobs_retry(jobs=Job.objects.filter(pk=job.pk))
    ((_old, new_task_id),) = result.retried
    assert (result.refused, result.waiting) == ([], 1)
    job.refresh_from_db()
    assert job.retried_at is not None, "the claim stands: its new job is in the outbox"
    assert AuditEntry.objects.get().action == "retry"
    app.conf.broker_url = broker.url  # the broker is back
    app_connections_forget()
    assert outbox.intents_sweep(now=timezone.now() + timedelta(hours=1)) == 1
    (message,) = queued_messages(broker.client(), "high")
    assert message["headers"]["id"] == new_task_id
    assert message["headers"][RETRY_OF_HEADER] == job.pk


def test_retry_takes_at_most_its_limit_per_call(app_broker) -> None:
    for n in range(5):
        failed(f"old-{n}")
    assert len(services.jobs_retry(jobs=Job.objects.all(), limit=3).retried) == 3
    assert Job.objects.filter(state=Job.State.FAILED, retried_at__isnull=True).count() == 2


def test_forget_deletes_only_failed_records_and_is_audited() -> None:
    job = failed("f-1")
    done = Job.objects.create(task_id="s-1", task_name="t", queue="high", state=Job.State.SUCCEEDED)
    assert services.jobs_forget(jobs=Job.objects.filter(pk__in=[job.pk, done.pk]), description="2") == 1
    assert list(Job.objects.values_list("task_id", flat=True)) == ["s-1"]
    assert AuditEntry.objects.get().action == "forget"


def test_flush_deletes_failed_records_older_than_asked() -> None:
    failed("recent")
    failed("old", finished_at=timezone.now() - timedelta(days=8))
    assert services.jobs_flush(older_than=timedelta(days=7)) == 1
    assert list(Job.objects.values_list("task_id", flat=True)) == ["recent"]
    assert services.jobs_flush() == 1
    assert [entry.target for entry in AuditEntry.objects.order_by("id")] == [
        "older than 7 days, 0:00:00",
        "all",
    ]


def test_clear_drops_one_queues_waiting_jobs_and_records_them_cleared(app_broker) -> None:
    with app.connection_for_write(app_broker.url) as connection:
        for queue in ("high", "high", "default"):
            app.send_task(
                "probe.record", args=["k", 0.0], queue=queue, connection=connection, ignore_result=True
            )
    assert services.queue_clear(queue="high") == 2
    assert broker_queues.queue_depths(["high", "default"]) == {
        "high": (0, None),
        "default": (1, pytest.approx(timezone.now().timestamp(), abs=60)),
    }
    assert Job.objects.filter(state=Job.State.CLEARED, queue="high").count() == 2
    assert AuditEntry.objects.get().action == "clear"


def test_an_unknown_queue_is_refused_naming_the_declared_ones(app_broker) -> None:
    with pytest.raises(
        services.OperationRefused, match="unknown queue 'hihg': Kiln's queues are high, default"
    ):
        services.queue_pause(queue="hihg")
    assert broker_queues.paused_queues() == set()


def test_pause_and_resume_keep_the_paused_set_in_the_broker_and_are_audited(app_broker) -> None:
    assert services.queue_pause(queue="default") == [], "no worker runs here to answer"
    assert broker_queues.paused_queues() == {"default"}
    services.queue_resume(queue="default")
    assert broker_queues.paused_queues() == set()
    assert [entry.action for entry in AuditEntry.objects.order_by("id")] == ["pause", "resume"]


@pytest.mark.parametrize(
    ("processes", "minimum", "message"),
    [
        (0, None, "a pool needs at least 1 process"),
        (4, 5, "the minimum must be between 1 and the number of processes"),
        (4, None, "no worker of pool 'high' answers"),
        (100_000, None, "at most 32 processes per pool"),
    ],
)
def test_scale_refuses_what_cannot_be_done(
    app_broker, processes: int, minimum: int | None, message: str
) -> None:
    with pytest.raises(services.OperationRefused, match=message):
        services.pool_scale(pool="high", processes=processes, minimum=minimum)
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90m", timedelta(minutes=90)), ("7d", timedelta(days=7)), (" 30 s ", timedelta(seconds=30))],
)
def test_durations_read_as_operators_write_them(text: str, expected: timedelta) -> None:
    assert services.duration_parse(text) == expected


def test_a_duration_without_a_unit_is_refused_saying_how_to_write_one() -> None:
    with pytest.raises(services.OperationRefused, match="use a number and s, m, h or d"):
        services.duration_parse("90")


def test_retrying_an_issue_publishes_its_jobs_refuses_those_without_arguments_and_is_audited(
    app_broker, admin_user
) -> None:
    from jobs import selectors
    from tests.jobs.conftest import failure

    issue = failure("i-0", LookupError("image 10 not found")).fingerprint
    for n in range(1, 4):
        failure(f"i-{n}", LookupError(f"image {n}1 not found"), queue="default")
    failure("i-big", LookupError("image 99 not found"), args=[], args_truncated=True)
    other = failure("other", ValueError("not an image"))
    assert selectors.issue_retry_preview(issue) == (4, 1)
    result = services.issue_retry(fingerprint=issue, user=admin_user)
    assert (len(result.retried), len(result.refused)) == (4, 1)
    assert (app_broker.client().llen("high"), app_broker.client().llen("default")) == (1, 3)
    assert selectors.issue_retry_preview(issue) == (0, 1)
    other.refresh_from_db()
    assert other.retried_at is None, "another issue's job is left alone"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.count, entry.user) == ("retry", f"issue {issue}", 4, admin_user)


def test_forgetting_an_issue_deletes_its_failed_jobs_only_and_is_audited() -> None:
    from tests.jobs.conftest import failure

    issue = failure("i-0", LookupError("image 10 not found")).fingerprint
    failure("i-1", LookupError("image 11 not found"))
    failure("other", ValueError("not an image"))
    assert services.issue_forget(fingerprint=issue) == 2
    assert list(Job.objects.values_list("task_id", flat=True)) == ["other"]
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.count) == ("forget", f"issue {issue}", 2)


@pytest.mark.parametrize(
    ("fingerprint", "message"),
    [("0123456789ab", "issue 0123456789ab has no job left"), ("x'; --", "is not an issue's fingerprint")],
)
def test_an_unknown_or_malformed_issue_is_refused(fingerprint: str, message: str) -> None:
    with pytest.raises(services.OperationRefused, match=message):
        services.issue_forget(fingerprint=fingerprint)
    assert not AuditEntry.objects.exists()
