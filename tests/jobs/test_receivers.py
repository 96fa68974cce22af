"""Purge runs asked by a person land in the jobs audit log (purge/ sends a signal, jobs/ listens)."""

from __future__ import annotations

import pytest

from jobs.models import AuditEntry
from purge import services
from purge.models import PurgeRun, RetentionPolicy

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def test_a_dry_run_from_the_admin_is_audited_with_its_user(admin_user) -> None:
    policy = RetentionPolicy.objects.get(target="report_history")
    run = services.purge_run_request(
        policy=policy, dry_run=True, trigger=PurgeRun.Trigger.ADMIN, user=admin_user
    )
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.user, entry.actor, entry.target) == (
        "purge-dry-run",
        admin_user,
        "admin",
        policy.name,
    )
    assert entry.details == {"run": run.pk, "trigger": "admin"}


def test_the_nightly_purge_is_not_an_operator_action() -> None:
    policy = RetentionPolicy.objects.get(target="report_history")
    services.purge_run_request(policy=policy, dry_run=False, trigger=PurgeRun.Trigger.NIGHTLY)
    assert not AuditEntry.objects.exists()


def test_a_parked_job_is_recorded_failed_with_its_arguments_so_it_can_be_retried() -> None:
    from broker.signals import ParkedJob, job_parked
    from jobs.models import Job

    responses = job_parked.send(
        sender=None,
        job=ParkedJob(task_id="t-1", task_name="probe.poison", queue="high", args=["k"], kwargs={}, deaths=3),
    )
    assert [response for _receiver, response in responses] == [True]
    job = Job.objects.get(task_id="t-1")
    assert (job.state, job.queue, job.args, job.args_truncated) == ("failed", "high", ["k"], False)
    assert (job.exception_type, job.exception_message) == (
        "WorkerLostError",
        "parked: the worker holding it died 3 times",
    )


def test_a_parked_job_whose_message_could_not_be_read_is_recorded_as_not_retryable() -> None:
    from broker.signals import ParkedJob, job_parked
    from jobs.models import Job

    job_parked.send(sender=None, job=ParkedJob("t-2", "", "high", None, None, deaths=4))
    assert Job.objects.get(task_id="t-2").args_truncated


def test_a_parked_job_has_an_issue_of_its_own_kind() -> None:
    from broker.signals import ParkedJob, job_parked
    from jobs.issues import fingerprint
    from jobs.models import Job

    for task_id, deaths in (("t-3", 3), ("t-4", 5)):
        job_parked.send(
            sender=None,
            job=ParkedJob(task_id, "probe.poison", "high", args=["k"], kwargs={}, deaths=deaths),
        )
    parked = {job.fingerprint for job in Job.objects.filter(task_id__in=["t-3", "t-4"])}
    assert parked == {
        fingerprint("probe.poison", "WorkerLostError", "parked: the worker holding it died 3 times", "")
    }
