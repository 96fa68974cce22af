"""jobs/schedules.py: when a beat entry is due and when it is late, as pure functions of the entry, its jobs
and the moment (frozen with time_machine: Celery's schedule objects read the clock too). Europe/Berlin for
the DST nights: 29 March 2026 (02:00 CET -> 03:00 CEST) and 25 October 2026 (03:00 CEST -> 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery import schedules as celery_schedules
from django_celery_beat.clockedschedule import clocked
from django_celery_beat.tzcrontab import TzAwareCrontab

from jobs.schedules import (
    DUE,
    LATE,
    MISSING_SEND,
    MISSING_START,
    NOT_WATCHED,
    ON_TIME,
    Entry,
    JobFacts,
    ScheduleState,
    cadence_words,
    default_grace,
    schedule_state,
    slot_after,
)

BERLIN = ZoneInfo("Europe/Berlin")
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def every(seconds: float) -> celery_schedules.schedule:
    return celery_schedules.schedule(timedelta(seconds=seconds))


def cron(**fields: str) -> TzAwareCrontab:
    return TzAwareCrontab(tz=BERLIN, **fields)


def entry(schedule, *, sent: datetime | None = None, changed: datetime = LONG_AGO, **fields) -> Entry:
    return Entry(
        name="test entry",
        task="probe.task",
        schedule=schedule,
        changed_at=changed,
        last_sent_at=sent,
        **fields,
    )


def judged(at: datetime, subject: Entry, jobs=(), **options) -> ScheduleState:
    """The entry judged with the clock stopped at `at`."""
    with time_machine.travel(at, tick=False):
        return schedule_state(subject, jobs, now=datetime.now(UTC), tz=BERLIN, **options)


def queued(published: datetime) -> JobFacts:
    return JobFacts("queued", published)


def ran(published: datetime, seconds: float = 1.0) -> JobFacts:
    return JobFacts(
        "succeeded",
        published,
        published + timedelta(seconds=0.1),
        published + timedelta(seconds=0.1 + seconds),
    )


# --- Cadence and grace ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (every(60), "every minute"),
        (every(2), "every 2 seconds"),
        (every(300), "every 5 minutes"),
        (every(86400), "every day"),
        (cron(), "every minute"),
        (cron(minute="*/15"), "every 15 minutes"),
        (cron(minute="*/25"), "hourly at :00, :25, :50"),
        (cron(minute="5"), "hourly at :05"),
        (cron(minute="0", hour="0"), "daily at 00:00"),
        (cron(minute="0", hour="9,17"), "daily at 09:00, 17:00"),
        (cron(minute="0", hour="9", day_of_week="mon-fri"), "on Mon-Fri at 09:00"),
        (cron(minute="0", hour="0", day_of_month="1"), "monthly on day 1 at 00:00"),
        (TzAwareCrontab(minute="0", hour="4", tz=UTC), "daily at 04:00 (UTC)"),
        (clocked(local(2026, 12, 4, 2, 56)), "once, at 4 Dec 2026, 02:56"),
    ],
)
def test_the_cadence_is_said_in_words(schedule, words: str) -> None:
    assert cadence_words(schedule, BERLIN) == words


@pytest.mark.parametrize(
    ("interval", "grace"),
    [
        (timedelta(seconds=2), timedelta(minutes=3)),
        (timedelta(minutes=1), timedelta(minutes=3)),
        (timedelta(minutes=2), timedelta(minutes=4)),
        (timedelta(minutes=5), timedelta(minutes=10)),
        (timedelta(days=1), timedelta(minutes=10)),
        (None, timedelta(minutes=10)),
    ],
)
def test_the_default_grace_is_two_intervals_between_3_and_10_minutes(interval, grace) -> None:
    assert default_grace(interval) == grace


def test_a_slot_is_the_same_whenever_it_is_asked() -> None:
    nightly = cron(minute="0", hour="0")
    answers = set()
    for clock in (local(2026, 1, 5, 12, 0), local(2026, 7, 1, 3, 0), local(2030, 3, 31, 2, 30)):
        with time_machine.travel(clock, tick=False):
            answers.add(slot_after(nightly, local(2026, 3, 29, 0, 0, 2)))
    assert answers == {local(2026, 3, 30, 0, 0)}


# --- Every minute, daily, midnight ------------------------------------------------------------------------
def test_an_every_minute_entry_is_due_at_its_slot_and_late_3_minutes_after_it() -> None:
    sweep = entry(every(60), sent=local(2026, 12, 1, 12, 0))
    assert judged(local(2026, 12, 1, 12, 0, 59), sweep).status == ON_TIME
    due = judged(local(2026, 12, 1, 12, 1), sweep)
    assert (due.status, due.reason) == (DUE, "due since 12:01, late if not started by 12:04")
    assert judged(local(2026, 12, 1, 12, 3, 59), sweep).status == DUE
    late = judged(local(2026, 12, 1, 12, 4), sweep)
    assert (late.status, late.missing) == (LATE, MISSING_SEND)
    assert late.reason == (
        "late since 12:04: beat has sent nothing for the 12:01 run (nothing since its last send at 12:00)"
    )


def test_the_nightly_purge_not_started_by_00_10_is_late() -> None:
    nightly = entry(cron(minute="0", hour="0"), sent=local(2026, 12, 1, 0, 0, 2))
    before = judged(local(2026, 12, 2, 0, 9, 59), nightly)
    assert (before.status, before.slot, before.grace) == (
        DUE,
        local(2026, 12, 2, 0, 0),
        timedelta(minutes=10),
    )
    late = judged(local(2026, 12, 2, 0, 10), nightly)
    assert late.status == LATE
    assert late.reason.startswith("late since 00:10: beat has sent nothing for the 00:00 run")
    assert late.reason.endswith("(nothing since its last send at 1 Dec 2026, 00:00:02)")
    # Sent at 00:00:02 tonight: on time until tomorrow night.
    tonight = entry(cron(minute="0", hour="0"), sent=local(2026, 12, 2, 0, 0, 2))
    assert judged(local(2026, 12, 2, 23, 59), tonight).reason == (
        "next at 3 Dec 2026, 00:00, late if not started by 3 Dec 2026, 00:10"
    )


def test_a_run_due_before_midnight_is_still_late_after_it() -> None:
    late_evening = entry(cron(minute="55", hour="23"), sent=local(2026, 11, 30, 23, 55, 1))
    assert judged(local(2026, 12, 2, 0, 4, 59), late_evening).status == DUE
    late = judged(local(2026, 12, 2, 0, 5), late_evening)
    assert late.status == LATE
    assert late.reason.startswith("late since 00:05: beat has sent nothing for the 1 Dec 2026, 23:55 run")


# --- DST nights -------------------------------------------------------------------------------------------
def test_the_nightly_purge_after_the_spring_forward_night_is_due_at_midnight_summer_time() -> None:
    # 29 March has 23 hours: the next midnight is 23 hours after the last one, and late is still 00:10.
    nightly = entry(cron(minute="0", hour="0"), sent=local(2026, 3, 29, 0, 0, 2))
    assert judged(local(2026, 3, 29, 23, 30), nightly).status == ON_TIME
    assert judged(local(2026, 3, 30, 0, 9, 59), nightly).status == DUE
    late = judged(local(2026, 3, 30, 0, 10), nightly)
    assert late.status == LATE
    assert late.due_by == datetime(2026, 3, 29, 22, 10, tzinfo=UTC)
    assert late.reason.startswith("late since 00:10:")


def test_a_slot_in_the_skipped_hour_is_due_when_beat_sends_it_an_hour_on() -> None:
    # 02:30 does not exist on 29 March; Celery (and so beat) reads it as 02:30 CET, which is 03:30 CEST.
    at_half_past_two = entry(cron(minute="30", hour="2"), sent=local(2026, 3, 28, 2, 30, 1))
    assert judged(local(2026, 3, 29, 3, 29), at_half_past_two).status == ON_TIME
    assert judged(local(2026, 3, 29, 3, 30), at_half_past_two).status == DUE
    assert judged(local(2026, 3, 29, 3, 40), at_half_past_two).status == LATE


def test_an_interval_counts_real_time_across_the_spring_forward_hour() -> None:
    sweep = entry(every(60), sent=local(2026, 3, 29, 1, 59, 30))
    assert judged(local(2026, 3, 29, 3, 0, 29), sweep).status == ON_TIME
    assert judged(local(2026, 3, 29, 3, 0, 30), sweep).slot == local(2026, 3, 29, 3, 0, 30)
    assert judged(local(2026, 3, 29, 3, 3, 30), sweep).status == LATE


def test_an_every_minute_crontab_follows_beat_over_the_repeated_hour() -> None:
    # After 02:59 summer time Celery's crontab next fires at 03:00 winter time, an hour later: beat is
    # silent through the repeated hour, and the watch, which asks the same schedule, does not call it late.
    every_minute = entry(cron(), sent=local(2026, 10, 25, 2, 59, 1))
    quiet = judged(local(2026, 10, 25, 2, 30, fold=1), every_minute)
    assert (quiet.status, quiet.slot) == (ON_TIME, local(2026, 10, 25, 3, 0))
    assert judged(local(2026, 10, 25, 3, 3), every_minute).status == LATE


def test_a_daily_run_in_the_repeated_hour_is_due_once() -> None:
    at_half_past_two = entry(cron(minute="30", hour="2"), sent=local(2026, 10, 25, 2, 30, 1))
    assert judged(local(2026, 10, 25, 2, 45, fold=1), at_half_past_two).slot == local(2026, 10, 26, 2, 30)


# --- Not watched, never run, one-offs ------------------------------------------------------------------------
def test_a_disabled_entry_is_not_watched() -> None:
    state = judged(local(2026, 12, 2, 12, 0), entry(every(60), enabled=False))
    assert (state.status, state.reason, state.watched, state.late) == (NOT_WATCHED, "disabled", False, False)


def test_an_entry_never_run_since_it_was_created_is_late_a_grace_after_its_first_slot() -> None:
    created = local(2026, 12, 2, 12, 0)
    new = entry(every(300), changed=created)
    assert judged(local(2026, 12, 2, 12, 14, 59), new).status == DUE
    late = judged(local(2026, 12, 2, 12, 15), new)
    assert late.reason == (
        "late since 12:15: beat has sent nothing for the 12:05 run "
        "(nothing since the entry was created or changed at 12:00)"
    )


def test_an_entry_with_a_start_time_waits_for_it_then_is_due_at_once() -> None:
    later = entry(every(3600), start_time=local(2026, 12, 3, 8, 0), changed=local(2026, 12, 2, 12, 0))
    waiting = judged(local(2026, 12, 3, 7, 0), later)
    assert (waiting.status, waiting.reason) == (ON_TIME, "starts at 08:00")
    assert judged(local(2026, 12, 3, 8, 10), later).status == LATE


def test_a_clocked_one_off_is_due_once_and_not_watched_once_it_ran() -> None:
    once = clocked(local(2026, 12, 2, 9, 0))
    assert judged(local(2026, 12, 2, 9, 9), entry(once, one_off=True)).status == DUE
    assert judged(local(2026, 12, 2, 9, 10), entry(once, one_off=True)).status == LATE
    done = judged(local(2026, 12, 2, 9, 10), entry(once, one_off=True, sent=local(2026, 12, 2, 9, 0, 1)))
    assert (done.status, done.reason) == (NOT_WATCHED, "a one-off entry that has run")


def test_an_expired_entry_and_a_solar_one_are_not_watched() -> None:
    expired = entry(every(60), expires=local(2026, 12, 1, 0, 0))
    assert judged(local(2026, 12, 2, 12, 0), expired).reason == "expired"
    # The reader leaves a solar schedule unbuilt (Celery needs `ephem` for it) and says why.
    sunrise = entry(None, unwatched="solar schedules are not watched", cadence="at sunrise (52.5, 13.4)")
    state = judged(local(2026, 12, 2, 12, 0), sunrise)
    assert (state.status, state.reason, state.cadence) == (
        NOT_WATCHED,
        "solar schedules are not watched",
        "at sunrise (52.5, 13.4)",
    )


def test_a_grace_set_for_the_entry_replaces_the_default() -> None:
    fast = entry(every(2), sent=local(2026, 12, 2, 12, 0, 0))
    assert judged(local(2026, 12, 2, 12, 0, 6), fast, grace=timedelta(seconds=5)).status == DUE
    assert judged(local(2026, 12, 2, 12, 0, 7), fast, grace=timedelta(seconds=5)).status == LATE


# --- Sent, but not started ----------------------------------------------------------------------------------
def test_runs_beat_sends_that_no_worker_starts_are_late_a_grace_after_the_first() -> None:
    sent = [local(2026, 12, 2, 12, minute, 0) for minute in (0, 1, 2)]
    jobs = [queued(sent[2]), queued(sent[1]), queued(sent[0]), ran(local(2026, 12, 2, 11, 59, 0))]
    sweep = entry(every(60), sent=sent[2], queue="default")
    waiting = judged(local(2026, 12, 2, 12, 2, 59), sweep, jobs)
    assert (waiting.status, waiting.reason) == (
        DUE,
        "sent at 12:00, waiting for a worker; late if not started by 12:03",
    )
    late = judged(local(2026, 12, 2, 12, 3), sweep, jobs)
    assert (late.status, late.missing) == (LATE, MISSING_START)
    assert late.reason == (
        "late since 12:03: beat sent it at 12:00, and no worker has started it since "
        "(its latest job is queued on queue default)"
    )
    assert (late.last_sent_at, late.last_started_at) == (sent[2], local(2026, 12, 2, 11, 59, 0, 100000))
    # The same, with the job history off: beat's sends are all there is to judge.
    assert judged(local(2026, 12, 2, 12, 3), sweep, jobs, history=False).status == DUE


def test_a_job_lost_days_ago_is_not_the_start_of_tonights_wait() -> None:
    nightly = entry(cron(minute="0", hour="0"), sent=local(2026, 12, 2, 0, 0, 1))
    jobs = [queued(local(2026, 12, 2, 0, 0, 1, 5000)), queued(local(2026, 11, 28, 0, 0, 1))]
    state = judged(local(2026, 12, 2, 0, 0, 2), nightly, jobs)
    assert (state.status, state.due_by) == (DUE, local(2026, 12, 2, 0, 10, 1, 5000))


def test_a_send_whose_job_the_history_no_longer_holds_proves_nothing() -> None:
    # A weekly entry: last Monday's job finished and was trimmed by the history's retention policy.
    weekly = entry(cron(minute="0", hour="6", day_of_week="mon"), sent=local(2026, 11, 30, 6, 0, 1))
    state = judged(local(2026, 12, 3, 12, 0), weekly, [queued(local(2026, 11, 2, 6, 0, 1))])
    assert (state.status, state.slot) == (ON_TIME, local(2026, 12, 7, 6, 0))


def test_the_latest_outcome_and_its_duration_come_from_the_history() -> None:
    started = local(2026, 12, 2, 0, 0, 2)
    running = JobFacts("started", started, started + timedelta(seconds=1))
    nightly = entry(cron(minute="0", hour="0"), sent=started)
    state = judged(local(2026, 12, 2, 0, 1, 1), nightly, [running, ran(local(2026, 12, 1, 0, 0, 2), 42)])
    assert (state.status, state.last_outcome, state.last_duration) == (ON_TIME, "started", 58.0)
    done = judged(local(2026, 12, 2, 12, 0), nightly, [ran(started, 42)])
    assert (done.last_outcome, done.last_duration) == ("succeeded", 42.0)
