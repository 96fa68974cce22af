"""Failed jobs grouped into issues, as Sentry groups events: jobs that failed the same way, in the same
place, share a fingerprint. Pure: history.py computes it when a failure is recorded, the selectors group by
it.

The fingerprint hashes the task, the exception type, the message with what varies from job to job taken
out ("image 123 not found" and "image 456 not found" read "image <n> not found"), and the innermost frame
of Kiln's own code in the traceback, by file and function: not the line, which moves with every edit, and
not a library's frame, which is the same for every caller.
"""

from __future__ import annotations

import hashlib
import os
import re

# Kiln's own packages (docs/architecture.md): a frame in one of these is Kiln's code; anything else (the
# standard library, site-packages, tests) is someone else's.
PACKAGES = frozenset(
    {"accounts", "blueprint", "broker", "config", "jobs", "metrics", "purge", "reports", "thumbnails"}
)
# The checkout these packages live in. A traceback is formatted by the process that raised it, which runs
# this checkout, so its frames' files start with this directory; the part after it is what the
# fingerprint keeps, the same on every host and after the checkout moves.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 48 bits: a collision needs millions of distinct issues.
DIGEST_LENGTH = 12
FINGERPRINT = re.compile(rf"[0-9a-f]{{{DIGEST_LENGTH}}}")

_SEPARATOR = re.compile(r"[/\\]")
_DRIVE = re.compile(r"[a-z]:[/\\]", re.IGNORECASE)
_EXTENSION = re.compile(r"\.[a-z]\w*$", re.IGNORECASE)


def _path(match: re.Match[str]) -> str:
    """A word with a slash is a path if it looks like one: absolute (/srv/x, ~/x, C:\\x), explicitly
    relative (./x), or with two separators or a file's extension; "I/O", "and/or" and "3/4" are not."""
    word = match[0]
    if (
        word.startswith(("/", "\\", "~/", "./", "../"))
        or _DRIVE.match(word)
        or len(_SEPARATOR.findall(word)) >= 2
        or _EXTENSION.search(word)
    ):
        return "<path>"
    return word


# In this order: a UUID or a URL holds numbers and slashes the later rules would cut apart; a quoted value
# may hold anything; what is left of ids, hex strings and numbers is taken token by token.
_NORMALISE = (
    (re.compile(r"\b[a-z][a-z0-9+.\-]*://\S+", re.IGNORECASE), "<url>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "<uuid>",
    ),
    # A quote that opens after a word character is an apostrophe ("can't"), not a quoted value. At most 300
    # characters between the quotes: a message of stray quotes must not cost a search per quote to its end.
    (re.compile(r"""(?<!\w)(['"])[^\n]{0,300}?\1(?!\w)"""), "'<value>'"),
    (re.compile(r"(?<![^\s'\"()\[\]{},;=<>])[^\s'\"()\[\]{},;=<>]*[/\\][^\s'\"()\[\]{},;=<>]*"), _path),
    (
        re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE),
        "<hex>",
    ),
    # A word that starts with a letter and holds a digit (img_123, job42); then a number with what is glued
    # to it (5s, 1.5s, 12,345, 2nd).
    (re.compile(r"\b[^\W\d]\w*\d\w*"), "<id>"),
    (re.compile(r"\d+(?:[.,]\d+)*\w*"), "<n>"),
    (re.compile(r"\s+"), " "),
)

_TRACEBACK_START = "Traceback (most recent call last):"
_FRAME = re.compile(r'^[ \t]*File "(?P<path>[^"]+)", line \d+, in (?P<function>\S+)', re.MULTILINE)


def message_normalised(text: str) -> str:
    """`text` with numbers, ids, UUIDs, hex strings, URLs, quoted values and paths replaced by placeholders
    and its whitespace collapsed: what jobs failing the same way have in common."""
    for pattern, placeholder in _NORMALISE:
        text = pattern.sub(placeholder, text)
    return text.strip()


def kiln_frame(traceback: str, root: str = PROJECT_ROOT) -> str:
    """The innermost frame of Kiln's code in `traceback` as "thumbnails/imaging.py:decode", or "" if none.

    Only the last traceback of the text counts: with chained exceptions ("During handling of the above
    exception…") it is the one of the exception that was raised.
    """
    last = traceback[traceback.rfind(_TRACEBACK_START) :] if _TRACEBACK_START in traceback else traceback
    prefix = root.rstrip(os.sep) + os.sep
    found = ""
    for frame in _FRAME.finditer(last):
        path = frame["path"]
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix) :]
        if relative.split(os.sep, 1)[0] in PACKAGES:
            found = f"{relative}:{frame['function']}"
    return found


def fingerprint(task_name: str, exception_type: str, message: str, traceback: str) -> str:
    """The issue a failure belongs to: a short hex digest of the task, the exception type, the normalised
    message and the innermost frame of Kiln's code."""
    parts = (task_name, exception_type, message_normalised(message), kiln_frame(traceback))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:DIGEST_LENGTH]
