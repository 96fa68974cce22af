"""How a job's arguments are found by value: written once with the record, matched by one LIKE.

A job's `argument_values` holds every value in its args and kwargs, at any depth but never a key, each as
its lowercased JSON text on a line of its own, between newlines: `[12]` and `{"image_id": 12, "force": true}`
give "\\n12\\n" and "\\n12\\ntrue\\n". JSON text never holds a raw newline (json.dumps escapes it), so
`LIKE '%\\n12\\n%'` finds the whole value 12 and never 123, 412 or the string "a 12 b", on SQLite and
PostgreSQL alike, in text Kiln wrote itself: it does not depend on how each database keeps JSON (SQLite
keeps json.dumps' text, PostgreSQL's jsonb rewrites it). Lowercased because SQLite's LIKE ignores the case
of ASCII letters: both databases then match "Photo.JPG" and "photo.jpg" alike.

Pure: no database here.
"""

from __future__ import annotations

import json
from typing import Any

SEPARATOR = "\n"


def argument_values(args: Any, kwargs: Any) -> str:
    """The text stored in `Job.argument_values` for these arguments ("" when they hold no value)."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        else:
            texts.append(json.dumps(value).lower())

    walk(args or [])
    walk(kwargs or {})
    if not texts:
        return ""
    return SEPARATOR + SEPARATOR.join(texts) + SEPARATOR


def argument_texts(value: str) -> list[str]:
    """What an argument searched for may have been stored as: `12` is the number 12 or the string "12";
    `"12"` (quoted) only the string; `true`, `null` the literal or the string; anything else a string."""
    value = value.strip()
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    if isinstance(parsed, str):
        return [json.dumps(parsed).lower()]
    if isinstance(parsed, list | dict):
        return [json.dumps(value).lower()]  # only scalars are stored one by one: search it as text
    return [json.dumps(parsed).lower(), json.dumps(value).lower()]


def argument_patterns(value: str) -> list[str]:
    """The substrings of `argument_values` that mean `value` is one of the job's values."""
    return [f"{SEPARATOR}{text}{SEPARATOR}" for text in argument_texts(value)]
