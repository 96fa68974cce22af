from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and queues"

    def ready(self) -> None:
        from django.db.models import Q

        from jobs import receivers
        from jobs.models import Job
        from purge import registry
        from purge.signals import purge_run_requested

        receivers.parked_connect()
        if settings.KILN_JOB_HISTORY:
            receivers.connect()

        # Horizon's trim settings: succeeded jobs kept a day, failed ones a week (admins edit the policies).
        registry.register(
            registry.RowTarget(
                key="job_history_done",
                label="Job history: succeeded, cleared and revoked jobs",
                former_labels=("job history: succeeded, cleared and revoked jobs",),
                model="jobs.Job",
                age_field="finished_at",
                default_days=1,
                only=Q(state__in=[Job.State.SUCCEEDED, Job.State.CLEARED, Job.State.REVOKED]),
            )
        )
        # A record whose final event never came (its process was killed before writing it, a message lost
        # with a Redis that had no persistence): long past any time limit or retry, it only takes room.
        registry.register(
            registry.RowTarget(
                key="job_history_unfinished",
                label="Job history: jobs that never reported an end",
                former_labels=("job history: jobs that never reported an end",),
                model="jobs.Job",
                age_field="published_at",
                default_days=7,
                only=Q(state__in=[Job.State.QUEUED, Job.State.STARTED, Job.State.RETRYING]),
            )
        )
        registry.register(
            registry.RowTarget(
                key="job_history_failed",
                label="Job history: failed jobs",
                former_labels=("job history: failed jobs",),
                model="jobs.Job",
                age_field="finished_at",
                default_days=7,
                only=Q(state=Job.State.FAILED),
            )
        )
        purge_run_requested.connect(receivers.purge_run_audit, weak=False)
