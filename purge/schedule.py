"""The nightly purge as a django-celery-beat entry, declared in code and installed after every migrate."""

from __future__ import annotations

from django.conf import settings

NIGHTLY_NAME = "purge: nightly"
NIGHTLY_TASK = "purge.tasks.purge_nightly"


def nightly_install() -> bool:
    """Create the entry if it is missing; an existing one is left exactly as an admin edited it."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=NIGHTLY_NAME).exists():
        return False
    midnight, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="0",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.create(
        name=NIGHTLY_NAME,
        task=NIGHTLY_TASK,
        crontab=midnight,
        queue="default",
        description="Runs every enabled retention policy once a night (purge/schedule.py).",
    )
    return True
