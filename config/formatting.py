"""Figures for people: durations as "4 min 12 s", not "0:04:12.299698"; counts with their noun and
thousands separators; moments and byte sizes in words."""

from __future__ import annotations

from datetime import datetime, timedelta


def duration(value: timedelta | float | None) -> str:
    """A duration in the two largest units that matter: "0.3 s", "12 s", "4 min 12 s", "2 h 5 min",
    "3 d 4 h"; "—" for none."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def count_of(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def moment_words(moment: datetime, *, seconds: bool = False) -> str:
    """ "4 Dec 2026, 02:56" (with ":28" when `seconds`): the site's and the admin's format
    (config/formats/en/formats.py)."""
    return f"{moment.day} {moment:%b %Y, %H:%M}" + (f":{moment:%S}" if seconds else "")


def bytes_words(size: int) -> str:
    """ "12.4 MB", "310 KB": in the units of the upload limit's messages (1 MB = 1,048,576 bytes)."""
    if size < 1024:
        return count_of(size, "byte")
    if size < 1_048_576:
        return f"{size / 1024:,.0f} KB"
    return f"{size / 1_048_576:,.1f} MB"
