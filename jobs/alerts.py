"""Alerts: conditions read from a snapshot, mailed to ADMINS (and posted to a webhook) once, then again only
after the cooldown while they hold. Checked every minute by a beat task, or by `manage.py jobs alerts`
from cron as a watchdog that does not need a worker."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.utils import timezone

from jobs import health, schedules, selectors
from jobs.models import Alert

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertCondition:
    key: str
    message: str
    # The mail's subject after the key; by default the message up to its first colon ("Queue high").
    subject: str = ""


def schedule_alert_key(name: str) -> str:
    """`schedule:<entry name>`, cut to the 100 characters Alert.key holds (an entry's name may have 200)."""
    return f"schedule:{name}"[: Alert._meta.get_field("key").max_length]


def alert_conditions(snap: selectors.Snapshot) -> list[AlertCondition]:
    """The conditions that hold now, judged with the snapshot's thresholds (the same as health's): a queue's
    oldest job past its warning wait, a queue without a worker, failed jobs at the warning level, a beat
    entry whose run has not started in time (jobs/schedules.py), the broker."""
    if not snap.broker_ok:
        return [AlertCondition("broker", "The broker (Redis) cannot be reached: no job is published or run.")]
    thresholds = snap.thresholds
    conditions = []
    for queue in snap.queues:
        threshold = thresholds.waits.get(queue.name)
        if threshold is not None and queue.oldest_wait is not None and queue.oldest_wait > threshold:
            conditions.append(
                AlertCondition(
                    f"wait:{queue.name}",
                    f"Queue {queue.name}: the oldest job has waited {queue.oldest_wait:.0f} s "
                    f"(threshold {threshold} s); {queue.depth} jobs waiting, {queue.running} running.",
                )
            )
        if queue.workers == 0:
            conditions.append(
                AlertCondition(
                    f"workers:{queue.name}",
                    f"Queue {queue.name}: no worker consumes it ({queue.depth} jobs waiting). "
                    "Check `supervisorctl status kiln:*`.",
                )
            )
    if thresholds.failed_level(snap.failed) != health.HEALTHY:
        conditions.append(
            AlertCondition(
                "failed",
                f"{snap.failed} failed jobs wait for an operator (threshold {thresholds.failed_warning}): "
                "`manage.py jobs failed`.",
            )
        )
    for schedule in snap.schedules:
        if schedule.late:
            # Read from the database, not from beat or a worker: `manage.py jobs alerts` from cron raises
            # it with beat dead, which is when it matters.
            if schedule.missing == schedules.MISSING_SEND:
                summary, check = "beat sent nothing", "Is beat running? `supervisorctl status kiln:beat`"
            else:
                summary, check = "sent, not started", "Do workers take its queue? `manage.py jobs status`"
            conditions.append(
                AlertCondition(
                    schedule_alert_key(schedule.name),
                    f"Schedule {schedule.name!r} ({schedule.cadence}, task {schedule.task}): "
                    f"{schedule.reason}. {check}. Every entry: /admin/jobs/schedules/",
                    subject=summary,
                )
            )
    return conditions


def alerts_check(*, snap: selectors.Snapshot | None = None, now: datetime | None = None) -> list[str]:
    """Update every alert's state; returns the keys that were notified this time."""
    now = now or timezone.now()
    snap = snap or selectors.snapshot()
    conditions = {condition.key: condition for condition in alert_conditions(snap)}
    cooldown = timedelta(minutes=settings.KILN_ALERT_COOLDOWN_MINUTES)
    notified = []
    for key, condition in conditions.items():
        alert, created = Alert.objects.get_or_create(
            key=key, defaults={"message": condition.message, "first_seen_at": now, "last_seen_at": now}
        )
        if not alert.firing and not created:
            Alert.objects.filter(pk=alert.pk).update(
                firing=True, first_seen_at=now, cleared_at=None, last_sent_at=None
            )
            alert.last_sent_at = None
        Alert.objects.filter(pk=alert.pk).update(firing=True, message=condition.message, last_seen_at=now)
        due = alert.last_sent_at is None or alert.last_sent_at + cooldown <= now
        # Claimed by a conditional UPDATE: two checks at once (a second beat) send one notification.
        if due and Alert.objects.filter(pk=alert.pk, last_sent_at=alert.last_sent_at).update(
            last_sent_at=now
        ):
            alert_notify(condition)
            notified.append(key)
    if snap.broker_ok:
        # With the broker unreachable nothing else can be judged: other alerts stay as they were, so they
        # are not cleared now and mailed again when it is back.
        Alert.objects.filter(firing=True).exclude(key__in=conditions).update(firing=False, cleared_at=now)
    return notified


def alert_notify(condition: AlertCondition) -> None:
    summary = condition.subject or (
        condition.message.split(":", 1)[0] if ":" in condition.message else "alert"
    )
    subject = f"{condition.key}: {summary}"
    body = f"{condition.message}\n\nDashboard: /admin/jobs/dashboard/ · health: manage.py jobs health"
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        logger.exception("alert %s: the mail to ADMINS could not be sent", condition.key)
    if settings.KILN_ALERT_WEBHOOK_URL:
        payload = json.dumps(
            {"alert": condition.key, "message": condition.message, "status": "firing"}
        ).encode()
        request = urllib.request.Request(
            settings.KILN_ALERT_WEBHOOK_URL, data=payload, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except OSError:
            logger.exception("alert %s: the webhook could not be reached", condition.key)
