from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and queues"

    def ready(self) -> None:
        if settings.KILN_JOB_HISTORY:
            from jobs import signals

            signals.connect()
