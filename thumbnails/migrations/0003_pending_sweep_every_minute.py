"""The pending sweep every minute instead of every 5: an upload made while the broker was down is then
thumbnailed within about two minutes of Redis coming back. Only a schedule nobody edited is changed."""

from django.db import migrations

SWEEP_NAME = "thumbnails: dispatch images left pending"


def every_minute(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.filter(name=SWEEP_NAME, interval__every=5, interval__period="minutes").update(
        interval=minute
    )


def every_five_minutes(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    five, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.filter(name=SWEEP_NAME, interval__every=1, interval__period="minutes").update(interval=five)


class Migration(migrations.Migration):
    dependencies = [("thumbnails", "0002_pending_sweep_schedule")]

    operations = [migrations.RunPython(every_minute, every_five_minutes)]
