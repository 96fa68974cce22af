from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and queues"

    def ready(self) -> None:
        from django.db.models import Q

        from jobs import audit
        from jobs.models import Job
        from purge import registry
        from purge.signals import purge_run_requested

        if settings.KILN_JOB_HISTORY:
            from jobs import signals

            signals.connect()

        # Horizon's trim settings: succeeded jobs kept a day, failed ones a week (admins edit the policies).
        registry.register(
            registry.RowTarget(
                key="job_history_done",
                label="job history: succeeded and cleared jobs",
                model="jobs.Job",
                age_field="finished_at",
                default_days=1,
                only=Q(state__in=[Job.State.SUCCEEDED, Job.State.CLEARED]),
            )
        )
        registry.register(
            registry.RowTarget(
                key="job_history_failed",
                label="job history: failed jobs",
                model="jobs.Job",
                age_field="finished_at",
                default_days=7,
                only=Q(state=Job.State.FAILED),
            )
        )
        purge_run_requested.connect(audit.purge_run_audit, weak=False)
