"""Credentials never leave Kiln in clear: not in a debug page, an error mail, a log line or a start-up error.

Django's own filter hides settings whose *name* looks secret (SECRET_KEY, DATABASES' PASSWORD). Kiln's
credentials also travel inside values whose names do not: REDIS_URL, CELERY_BROKER_URL and
CELERY_RESULT_BACKEND carry Redis's password in the URL, DATABASE_URL PostgreSQL's, and a webhook URL
is a secret as a whole. `mask` hides the password of every URL in a text; `ExceptionReporterFilter`
applies it to settings, request headers and traceback variables (DEFAULT_EXCEPTION_REPORTER_FILTER, so
error mails too); `MaskingFormatter` to every log line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.views.debug import ExceptionReporter as DjangoExceptionReporter
from django.views.debug import SafeExceptionReporterFilter

MASK = "********"

# scheme://user:password@host — the password is whatever lies between the first ':' after the scheme's
# '//' and the last '@' before the host (a password may itself hold '@' or ':' when not percent-encoded).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:)(?P<password>[^\s'\"]*)@")
# ?password=…, &token=…, ;key=… in a URL, or a query string alone (QUERY_STRING starts with its first name).
_QUERY_SECRET = re.compile(
    r"(?P<head>(?:^|(?<=[?&;]))(?:password|passwd|pass|token|secret|key|api_key|access_key|secret_key|signature)=)"
    r"(?P<value>[^&;\s'\"]+)",
    re.IGNORECASE,
)


def mask(text: str) -> str:
    """`text` with the password of every URL in it, and every secret query parameter, replaced by a mask."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0], text)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK, text)


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus: names that hold tokens, webhooks and credentials are hidden whole, and the
    password of any URL in any setting, header or traceback variable is masked."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|WEBHOOK|AUTHORIZATION|HTTP_COOKIE|DSN", flags=re.I
    )
    cleansed_substitute = MASK

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask(cleansed)
        if isinstance(cleansed, bytes):
            return mask(cleansed.decode("utf-8", "replace"))
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame) -> list[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self._cleanse_value(name, value)) for name, value in variables]

    def _cleanse_value(self, name: str, value: Any) -> Any:
        if isinstance(value, str | bytes | dict | list | tuple):
            return self.cleanse_setting(name, value)
        # Anything else is shown by its repr; mask what that repr would print.
        try:
            text = repr(value)
        except Exception:
            return value
        masked = mask(text)
        return value if masked == text else _Masked(masked)


class ExceptionReporter(DjangoExceptionReporter):
    """Django's reporter shows the query string's parameters and the cookies as they came; these are masked
    too (a token or a URL with a password in a query string). DEFAULT_EXCEPTION_REPORTER."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if isinstance(data.get("request_insecure_uri"), str):
            data["request_insecure_uri"] = mask(data["request_insecure_uri"])
        for key in ("request_GET_items", "request_COOKIES_items"):
            if data.get(key) is not None:
                data[key] = [(name, self.filter.cleanse_setting(name, value)) for name, value in data[key]]
        return data


class _Masked:
    """Shows a masked repr in place of an object whose own repr would print a password."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class MaskingFormatter(logging.Formatter):
    """Every log line, traceback included, with URL passwords masked (LOGGING in config/settings.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))
