"""Install the periodic sweep that dispatches images left pending (broker down at upload, lost message).

Declared here, in code, so every installation has it; an admin may change its interval in the admin.
Idempotent: running it again updates the same row, found by name.
"""

from django.db import migrations

SWEEP_NAME = "thumbnails: dispatch images left pending"
SWEEP_TASK = "thumbnails.tasks.pending_sweep"


def install(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_five_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=SWEEP_NAME,
        defaults={"task": SWEEP_TASK, "interval": every_five_minutes, "enabled": True},
    )


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("thumbnails", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
