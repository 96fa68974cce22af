from __future__ import annotations

from datetime import timedelta

import pytest

from config.formatting import duration


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (timedelta(microseconds=299698), "0.3 s"),
        (9.96, "10.0 s"),
        (12.4, "12 s"),
        (252, "4 min 12 s"),
        (timedelta(minutes=5), "5 min"),
        (timedelta(hours=2, minutes=5, seconds=9), "2 h 5 min"),
        (timedelta(days=3, hours=4), "3 d 4 h"),
        (-1, "—"),
    ],
)
def test_durations_read_as_people_say_them(value, text: str) -> None:
    assert duration(value) == text


def test_dates_read_the_same_in_the_admin_the_templates_and_kilns_own_words() -> None:
    from datetime import datetime

    from django.utils.formats import date_format

    from config.formatting import moment_words

    moment = datetime(2026, 12, 4, 2, 56, 28)
    assert date_format(moment, "DATETIME_FORMAT") == "4 Dec 2026, 02:56"
    assert date_format(moment, "SHORT_DATETIME_FORMAT") == "4 Dec 2026, 02:56"
    assert moment_words(moment) == "4 Dec 2026, 02:56"
    assert moment_words(moment, seconds=True) == "4 Dec 2026, 02:56:28"
