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
