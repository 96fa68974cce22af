"""jobs/issues.py: which failures are the same issue. Pure: no database, tracebacks raised for real."""

from __future__ import annotations

import os
import traceback

import pytest
from PIL import Image

from jobs import services
from jobs.issues import FINGERPRINT, PROJECT_ROOT, fingerprint, kiln_frame, message_normalised
from thumbnails import imaging


def traceback_of(call) -> str:
    try:
        call()
    except Exception as error:
        return "".join(traceback.format_exception(error))
    raise AssertionError("it did not raise")


@pytest.mark.parametrize(
    ("message", "normalised"),
    [
        ("image 123 not found", "image <n> not found"),
        ("not an image", "not an image"),
        ("task img_123 took 1.5s (limit 120 s)", "task <id> took <n> (limit <n> s)"),
        ("job 8f14e45f-ceea-467f-a0b3-3b2f1b1f5f0e lost", "job <uuid> lost"),
        (
            "object at 0x7f3a9c2b1d90, digest 9f86d081884c7d659a2feaa0c55ad015",
            "object at <hex>, digest <hex>",
        ),
        ("cannot open '/srv/kiln/var/media/a b.jpg': denied", "cannot open '<value>': denied"),
        ('unknown key "size"', "unknown key '<value>'"),
        ("No such file: /srv/kiln/var/media/originals/ab/cd.jpg", "No such file: <path>"),
        ("wrote renditions/ab/x.png", "wrote <path>"),
        ("redis://127.0.0.1:6379/0 refused", "<url> refused"),
        # An apostrophe opens no quoted value; a word with a slash that is no path stays.
        ("can't decode it: 'utf-8' says so", "can't decode it: '<value>' says so"),
        ("Input/output error, and/or 3/4", "Input/output error, and/or <n>/<n>"),
        ("first line\n   second\tline", "first line second line"),
    ],
)
def test_a_message_keeps_what_failures_of_one_kind_have_in_common(message: str, normalised: str) -> None:
    assert message_normalised(message) == normalised


def test_a_message_made_of_stray_quotes_is_normalised_quickly() -> None:
    # Each unmatched quote searches only so far for its partner.
    assert message_normalised(" 'a" * 1333).startswith("'a 'a")


def test_the_same_failure_with_other_ids_is_the_same_issue_and_other_failures_are_not() -> None:
    text = traceback_of(lambda: services.duration_parse("soon"))
    same = fingerprint("thumbnails.generate", "LookupError", "image 123 not found", text)
    assert FINGERPRINT.fullmatch(same)
    assert fingerprint("thumbnails.generate", "LookupError", "image 456 not found", text) == same
    others = {
        fingerprint("thumbnails.generate", "ValueError", "not an image", text),
        fingerprint("thumbnails.generate", "ValueError", "time limit exceeded", text),
        fingerprint("thumbnails.generate", "KeyError", "image 123 not found", text),
        fingerprint("reports.render", "LookupError", "image 123 not found", text),
        fingerprint("thumbnails.generate", "LookupError", "image 123 not found", ""),
    }
    assert len(others) == 5
    assert same not in others


def test_an_error_raised_in_kilns_code_is_placed_at_the_raising_function() -> None:
    text = traceback_of(lambda: services.duration_parse("soon"))
    assert f'File "{PROJECT_ROOT}/jobs/services.py"' in text, "a real traceback of this checkout"
    assert kiln_frame(text) == "jobs/services.py:duration_parse"


def test_an_error_raised_in_a_library_is_placed_at_the_kiln_function_that_called_it() -> None:
    # Pillow raises, twice chained, inside site-packages; Kiln's frame above it is what the issue keeps.
    text = traceback_of(lambda: imaging.encode(Image.new("P", (4, 4)), imaging.THUMB))
    innermost = text.split("Traceback (most recent call last):")[-1].strip().splitlines()[-3]
    assert "site-packages/PIL/" in innermost
    assert kiln_frame(text) == "thumbnails/imaging.py:encode"


def test_code_outside_kilns_packages_has_no_kiln_frame() -> None:
    def raise_here() -> None:
        raise ValueError("a test's own code")

    assert kiln_frame(traceback_of(raise_here)) == "", "tests/ is not one of Kiln's packages"
    # A library named like a Kiln package, installed in a virtualenv inside the checkout.
    venv = os.path.join(PROJECT_ROOT, ".venv/lib/python3.11/site-packages/jobs/core.py")
    text = f'Traceback (most recent call last):\n  File "{venv}", line 3, in run\n    x()\nValueError: x\n'
    assert kiln_frame(text) == ""


def test_the_line_number_does_not_change_the_issue_but_the_function_does() -> None:
    text = traceback_of(lambda: services.duration_parse("soon"))
    moved = text.replace(", line ", ", line 1")  # every line number changes: 36 reads 136
    assert moved != text
    assert fingerprint("t", "E", "m", moved) == fingerprint("t", "E", "m", text)
    renamed = text.replace("in duration_parse", "in duration_read")
    assert fingerprint("t", "E", "m", renamed) != fingerprint("t", "E", "m", text)


def test_only_the_traceback_of_the_exception_raised_counts() -> None:
    def failing_while_handling() -> None:
        try:
            services.duration_parse("soon")
        except services.OperationRefused:
            raise KeyError("raised while handling it") from None

    text = traceback_of(failing_while_handling)
    chained = traceback_of(lambda: services.duration_parse("soon")) + (
        "\nDuring handling of the above exception, another exception occurred:\n\n" + text
    )
    assert kiln_frame(chained) == "", "the last traceback has no Kiln frame; the first one's is not used"
