"""Audit entries for operations other apps perform (purge triggers), received through their signals."""

from __future__ import annotations

from typing import Any

from jobs.services import audit_record


def purge_run_audit(sender: Any = None, run: Any = None, user: Any = None, **kwargs: Any) -> None:
    audit_record(
        action="purge-dry-run" if run.dry_run else "purge-run",
        user=user,
        target=run.policy.name,
        count=1,
        details={"run": run.pk, "trigger": run.trigger},
    )
