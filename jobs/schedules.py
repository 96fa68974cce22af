"""Every beat entry watched, a dead-man's switch for beat: when each periodic task is due, by when its run
must have started, and whether it is late. Pure functions over Celery's own schedule objects (what
django-celery-beat's `PeriodicTask.schedule` returns), so the watch and beat agree on every slot, DST
nights included; jobs.selectors reads the entries and their jobs.

Two records prove two different things:
  sent     `PeriodicTask.last_run_at`, written by beat when it sends the task (CELERY_BEAT_SYNC_EVERY = 1
           makes it write at once). Nothing else writes it: it proves beat is alive and scheduling.
  started  the job history (jobs.Job): a job of the entry's task, with the entry's arguments, published at
           or after that send and started by a worker. It proves the queue took it.

The rules, with grace = KILN_SCHEDULE_GRACE[name], or twice the interval, at least 3 and at most 10 minutes:
  - the slot is the first one after the last send; never sent, the first after the entry was created or
    last changed (beat counts from there too), or its start time;
  - late once slot + grace has passed: beat sent nothing;
  - late once grace has passed since the first send no worker started, while the job of beat's last send
    sits unstarted in the history (queued, cleared, revoked): beat sends, no worker takes them;
  - not watched: disabled entries, one-off entries that ran, expired entries, solar schedules (Celery needs
    the `ephem` package for them, which Kiln does not install).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from celery import schedules as celery_schedules
from django_celery_beat.clockedschedule import clocked

from config.formatting import moment_words

ON_TIME, DUE, LATE, NOT_WATCHED = "on time", "due", "late", "not watched"
# What a late entry misses: beat's send, or a worker's start of what beat sent.
MISSING_SEND, MISSING_START = "send", "start"

GRACE_MIN = timedelta(minutes=3)
GRACE_MAX = timedelta(minutes=10)
# A job published this long before beat's recorded send still belongs to it: beat stamps last_run_at just
# before it publishes, in the same process, so a second is plenty.
SEND_TOLERANCE = timedelta(seconds=1)
# Any fixed instant: schedules are asked for "the slot after" relative to it, so the answer never depends on
# the clock (see slot_after).
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")  # crontab's day_of_week: Sunday is 0


@dataclass(frozen=True)
class Entry:
    """One django-celery-beat entry, as the watch needs it."""

    name: str
    task: str
    schedule: celery_schedules.BaseSchedule | None  # None: one the watch cannot judge, see `unwatched`
    changed_at: datetime  # PeriodicTask.date_changed: beat's start for an entry never sent
    last_sent_at: datetime | None = None  # PeriodicTask.last_run_at
    enabled: bool = True
    one_off: bool = False
    run_count: int = 0
    start_time: datetime | None = None
    expires: datetime | None = None
    queue: str = ""
    # Set by the reader for an entry without a schedule the watch can judge, with its cadence in words:
    # a solar one (Celery needs the `ephem` package, which Kiln does not install, even to build it).
    unwatched: str = ""
    cadence: str = ""


@dataclass(frozen=True)
class JobFacts:
    """One job of the entry in the history."""

    state: str
    published_at: datetime | None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ScheduleState:
    """An entry judged at a moment."""

    name: str
    task: str
    cadence: str
    status: str  # ON_TIME, DUE, LATE or NOT_WATCHED
    reason: str  # in words, with local times: what the status rests on
    missing: str = ""  # when late: MISSING_SEND or MISSING_START
    slot: datetime | None = None  # the run the entry is judged by (its next run while on time)
    due_by: datetime | None = None  # late from this moment on, if nothing happens
    grace: timedelta | None = None
    last_sent_at: datetime | None = None
    last_started_at: datetime | None = None
    last_outcome: str | None = None  # the latest job's state: queued, started (running), succeeded...
    last_duration: float | None = None  # the latest job's run so far, in seconds
    queue: str = ""

    @property
    def watched(self) -> bool:
        return self.status != NOT_WATCHED

    @property
    def late(self) -> bool:
        return self.status == LATE


# --- Slots ----------------------------------------------------------------------------------------------
def slot_after(schedule: celery_schedules.BaseSchedule, moment: datetime) -> datetime:
    """The first slot after a run at `moment`, in UTC, by the schedule's own arithmetic.

    `remaining_estimate(last_run_at)` is what beat asks: "next slot minus now". Asked with now fixed at
    _EPOCH it gives the slot itself, whatever the clock says; the sum is done in UTC, since wall-clock
    arithmetic on a zone-aware datetime is off by an hour across a DST change."""
    at_epoch = copy.copy(schedule)
    at_epoch.nowfun = lambda: _EPOCH
    return (_EPOCH + at_epoch.remaining_estimate(moment)).astimezone(UTC)


def send_slot(schedule: celery_schedules.BaseSchedule, last_sent_at: datetime) -> datetime:
    """The slot a send serves, the same whichever beat sends it: the key of its claim (jobs/beat.py).

    A crontab's or a one-off's slot is exact: the first after the last send. An interval's is the first
    after the last send rounded down to the interval's grid (counted from the Unix epoch in UTC): two beats
    each keep their own last send, a few milliseconds apart, and would otherwise never name one slot alike;
    one beat's successive sends are an interval or more apart, so they never share a grid point. A beat
    that takes over from the database's last send (its predecessor died between sending and saving it)
    names the slot its predecessor sent."""
    if isinstance(schedule, clocked):
        return schedule.clocked_time.astimezone(UTC)
    slot = slot_after(schedule, last_sent_at)
    if isinstance(schedule, celery_schedules.crontab) or not hasattr(schedule, "run_every"):
        return slot
    every = schedule.run_every.total_seconds()
    if every <= 0:
        return slot
    stamp = slot.timestamp()
    return datetime.fromtimestamp(stamp - stamp % every, UTC)


def interval(schedule: celery_schedules.BaseSchedule, slot: datetime) -> timedelta | None:
    """The time between `slot` and the slot after it; None for a one-off (clocked)."""
    if isinstance(schedule, clocked):
        return None
    if isinstance(schedule, celery_schedules.crontab):
        return slot_after(schedule, slot) - slot
    return schedule.run_every


def default_grace(every: timedelta | None) -> timedelta:
    """Two intervals, at least 3 minutes (beat wakes every 5 s, a busy queue takes a moment) and at most
    10 (the nightly purge not started by 00:10 is worth a mail whatever its cadence)."""
    if every is None:
        return GRACE_MAX
    return min(max(2 * every, GRACE_MIN), GRACE_MAX)


def first_slot(entry: Entry) -> datetime:
    """The slot the entry waits for now: the first after its last send, as beat computes it."""
    if isinstance(entry.schedule, clocked):
        return entry.schedule.clocked_time.astimezone(UTC)
    if entry.last_sent_at is not None:
        return slot_after(entry.schedule, entry.last_sent_at)
    if entry.start_time is not None:
        # Never sent with a start time: beat counts from 30 years back and sends as soon as the start time
        # has come, or as soon as it reads the entry if it was changed after that.
        return max(entry.start_time, entry.changed_at).astimezone(UTC)
    return slot_after(entry.schedule, entry.changed_at)


# --- Words ----------------------------------------------------------------------------------------------
def clock(moment: datetime, tz: tzinfo, now: datetime) -> str:
    """ "00:10" on the day of `now` (with seconds when the moment has some), the whole date otherwise."""
    local, today = moment.astimezone(tz), now.astimezone(tz)
    if local.date() != today.date():
        return moment_words(local, seconds=bool(local.second))
    return local.strftime("%H:%M:%S" if local.second else "%H:%M")


def every_words(every: timedelta) -> str:
    seconds = every.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return "every second" if seconds == 1 else f"every {seconds:g} seconds"


def _field(values: set[int], full: range, names: tuple[str, ...] = ()) -> str:
    """A crontab field as cron writes it: `*`, `5`, `1-5`, `0,30` (`Mon-Fri` with names)."""
    if set(values) == set(full):
        return "*"
    word = (lambda value: names[value]) if names else str
    ordered, parts = sorted(values), []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(word(start) if start == previous else f"{word(start)}-{word(previous)}")
        if value is not None:
            start = previous = value
    return ",".join(parts)


def crontab_words(schedule: celery_schedules.crontab) -> str:
    """ "every minute", "every 15 minutes", "hourly at :05", "daily at 00:00", "on Mon, Fri at 09:00",
    "monthly on day 1 at 00:00"; cron's own fields for anything else."""
    minutes, hours = sorted(schedule.minute), sorted(schedule.hour)
    every_day = set(schedule.day_of_month) == set(range(1, 32)) and set(schedule.month_of_year) == set(
        range(1, 13)
    )
    every_weekday = set(schedule.day_of_week) == set(range(7))
    all_hours = set(hours) == set(range(24))
    step = minutes[1] - minutes[0] if len(minutes) > 1 else 0
    # */15 is every 15 minutes; */25 is not (:50 to :00 is 10): "hourly at :00, :25, :50".
    if all_hours and step and 60 % step == 0 and minutes == list(range(0, 60, step)):
        time = "every minute" if step == 1 else f"every {step} minutes"
    elif all_hours:
        time = "hourly at " + ", ".join(f":{minute:02d}" for minute in minutes)
    elif len(minutes) * len(hours) <= 4:
        time = "at " + ", ".join(f"{hour:02d}:{minute:02d}" for hour in hours for minute in minutes)
    else:
        time = ""
    if time and every_day and every_weekday:
        return time if time.startswith(("every", "hourly")) else f"daily {time}"
    if time.startswith("at ") and every_day:
        return f"on {_field(schedule.day_of_week, range(7), _WEEKDAYS).replace(',', ', ')} {time}"
    if time.startswith("at ") and every_weekday and set(schedule.month_of_year) == set(range(1, 13)):
        days = _field(schedule.day_of_month, range(1, 32))
        return f"monthly on day {days} {time}"
    fields = (
        _field(schedule.minute, range(60)),
        _field(schedule.hour, range(24)),
        _field(schedule.day_of_month, range(1, 32)),
        _field(schedule.month_of_year, range(1, 13)),
        _field(schedule.day_of_week, range(7)),
    )
    return "cron " + " ".join(fields)


def cadence_words(schedule: celery_schedules.BaseSchedule, tz: tzinfo) -> str:
    """The cadence in words; a crontab in another zone than the site's says which."""
    if isinstance(schedule, clocked):
        return f"once, at {moment_words(schedule.clocked_time.astimezone(tz))}"
    if isinstance(schedule, celery_schedules.crontab):
        words = crontab_words(schedule)
        zone = str(getattr(schedule, "tz", tz))  # a ZoneInfo's str is its key, "Europe/Berlin"
        return words if zone == str(tz) else f"{words} ({zone})"
    return every_words(schedule.run_every)


# --- The judgement --------------------------------------------------------------------------------------
def not_watched_reason(entry: Entry, now: datetime) -> str:
    if not entry.enabled:
        return "disabled"
    if entry.one_off and (entry.run_count or entry.last_sent_at is not None):
        return "a one-off entry that has run"
    if entry.expires is not None and entry.expires <= now:
        return "expired"
    if entry.schedule is None:
        return entry.unwatched or "no schedule"
    return ""


def _outcome(job: JobFacts | None, now: datetime) -> tuple[str | None, float | None]:
    if job is None:
        return None, None
    if job.started_at is None:
        return job.state, None
    end = job.finished_at or now
    return job.state, max((end - job.started_at).total_seconds(), 0.0)


def _unstarted_since(entry: Entry, jobs: Sequence[JobFacts], grace: timedelta) -> JobFacts | None:
    """The first of the sends no worker has started, when beat's last send is one of them: its job is in
    the history, unstarted, and so are the jobs of the sends before it, back to the last one that started.

    The run of unstarted jobs is followed back only from one send to the one before it (no more than a
    slot and the grace apart): a job lost days ago, whose successors' records were trimmed since they
    finished, is not taken for the start of today's wait. A send whose job is not in the history (history
    off, trimmed) proves nothing either way."""
    if entry.last_sent_at is None or not jobs:
        return None
    newest = jobs[0]
    if (
        newest.started_at
        or not newest.published_at
        or newest.published_at < entry.last_sent_at - SEND_TOLERANCE
    ):
        return None
    first = newest
    for older in jobs[1:]:
        if older.started_at or not older.published_at:
            break
        if first.published_at > slot_after(entry.schedule, older.published_at) + grace:  # type: ignore[operator]
            break  # not the send before: an older, unrelated wait
        first = older
    return first


def schedule_state(
    entry: Entry,
    jobs: Sequence[JobFacts] = (),
    *,
    now: datetime,
    tz: tzinfo,
    grace: timedelta | None = None,
    history: bool = True,
) -> ScheduleState:
    """`jobs`: the entry's jobs in the history, newest first; `grace` overrides the cadence's default;
    `history` False (KILN_JOB_HISTORY off) judges by beat's sends alone."""
    latest = jobs[0] if jobs else None
    started = next((job for job in jobs if job.started_at), None)
    outcome, duration = _outcome(latest, now)
    facts = {
        "name": entry.name,
        "task": entry.task,
        "cadence": entry.cadence or (cadence_words(entry.schedule, tz) if entry.schedule else ""),
        "last_sent_at": entry.last_sent_at,
        "last_started_at": started.started_at if started else None,
        "last_outcome": outcome,
        "last_duration": duration,
        "queue": entry.queue,
    }
    reason = not_watched_reason(entry, now)
    if reason:
        return ScheduleState(status=NOT_WATCHED, reason=reason, **facts)
    if entry.start_time is not None and entry.last_sent_at is None and now < entry.start_time:
        return ScheduleState(
            status=ON_TIME,
            reason=f"starts at {clock(entry.start_time, tz, now)}",
            slot=entry.start_time,
            **facts,
        )
    assert entry.schedule is not None  # not_watched_reason above
    slot = first_slot(entry)
    if entry.expires is not None and slot >= entry.expires:
        return ScheduleState(
            status=NOT_WATCHED,
            reason=f"expires at {clock(entry.expires, tz, now)}, before its next run",
            **facts,
        )
    grace = grace if grace is not None else default_grace(interval(entry.schedule, slot))
    due_by = slot + grace
    judged = {"slot": slot, "grace": grace, **facts}
    if now >= due_by:
        since = (
            f"its last send at {clock(entry.last_sent_at, tz, now)}"
            if entry.last_sent_at
            else f"the entry was created or changed at {clock(entry.changed_at, tz, now)}"
        )
        return ScheduleState(
            status=LATE,
            missing=MISSING_SEND,
            reason=f"late since {clock(due_by, tz, now)}: beat has sent nothing for the {clock(slot, tz, now)} "
            f"run (nothing since {since})",
            due_by=due_by,
            **judged,
        )
    unstarted = _unstarted_since(entry, jobs, grace) if history else None
    if unstarted is not None and unstarted.published_at:
        stuck_by = unstarted.published_at + grace
        sent = clock(unstarted.published_at, tz, now)
        if now >= stuck_by:
            queue = f" on queue {entry.queue}" if entry.queue else ""
            return ScheduleState(
                status=LATE,
                missing=MISSING_START,
                reason=f"late since {clock(stuck_by, tz, now)}: beat sent it at {sent}, and no worker has "
                f"started it since (its latest job is {latest.state if latest else unstarted.state}{queue})",
                due_by=stuck_by,
                **judged,
            )
        return ScheduleState(
            status=DUE,
            reason=f"sent at {sent}, waiting for a worker; late if not started by {clock(stuck_by, tz, now)}",
            due_by=stuck_by,
            **judged,
        )
    if slot <= now:
        return ScheduleState(
            status=DUE,
            reason=f"due since {clock(slot, tz, now)}, late if not started by {clock(due_by, tz, now)}",
            due_by=due_by,
            **judged,
        )
    return ScheduleState(
        status=ON_TIME,
        reason=f"next at {clock(slot, tz, now)}, late if not started by {clock(due_by, tz, now)}",
        due_by=due_by,
        **judged,
    )
