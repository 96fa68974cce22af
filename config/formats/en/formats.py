"""Dates and times for people, the same on every page and in the admin: "4 Dec 2026, 02:56", a 24-hour
clock, instead of Django's English default "Dec. 4, 2026, 2:56 a.m." beside Kiln's own "2026-12-04
02:56:28" (config/formatting.moment_words writes the same)."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
MONTH_DAY_FORMAT = "j F"
YEAR_MONTH_FORMAT = "F Y"
