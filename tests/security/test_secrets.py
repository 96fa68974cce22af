"""Every setting that can carry a credential is masked in debug pages, error mails, logs and start-up errors."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.http import HttpRequest
from django.test import Client
from django.urls import path

from config.secrets import MaskingFormatter, mask
from tests.config.test_settings import load_settings

# Built at run time: the debug page shows the source lines around each frame, and this file's own source
# holding a literal secret would be a false alarm.
PASSWORD = "-".join(("hunter2", "Zq9"))
REDIS = f"redis://:{PASSWORD}@redis.internal:6379/0"
WEBHOOK = "https://hooks.example.com/services/T000/B000/" + "-".join(("webhook", "path-is-the-secret"))


def failing_view(request: HttpRequest):
    broker_url = REDIS  # a local variable in the traceback: shown on the debug page and in the mail
    raise RuntimeError(f"cannot reach the broker ({len(broker_url)} characters)")


urlpatterns = [path("boom/", failing_view)]


@pytest.fixture
def credentials(settings):
    settings.ROOT_URLCONF = __name__
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.REDIS_URL = REDIS
    settings.CELERY_BROKER_URL = REDIS
    settings.CELERY_RESULT_BACKEND = "broker.results:KilnRedisBackend+" + REDIS
    settings.KILN_ALERT_WEBHOOK_URL = WEBHOOK
    settings.KILN_METRICS_TOKEN = "metrics-token-Zq9"
    return settings


def assert_no_secret(text: str) -> None:
    for secret in (PASSWORD, "webhook-path-is-the-secret", "metrics-token-Zq9", "bearer-token-Zq9"):
        assert secret not in text, f"{secret!r} leaked"


@pytest.mark.django_db
def test_an_error_mail_masks_every_credential(credentials) -> None:
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer bearer-token-Zq9")
    response = client.get(f"/boom/?token=bearer-token-Zq9&next={REDIS}")
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    body = message.body + "".join(str(content) for content, _ in message.alternatives)
    assert "redis.internal" in body  # the report is all there, but for the passwords
    assert_no_secret(body + message.subject)


@pytest.mark.django_db
def test_the_debug_page_masks_every_credential(credentials) -> None:
    credentials.DEBUG = True
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer bearer-token-Zq9")
    for accept in ("text/html", "text/plain"):
        response = client.get("/boom/?token=bearer-token-Zq9", HTTP_ACCEPT=accept)
        assert response.status_code == 500
        page = response.content.decode()
        assert "CELERY_BROKER_URL" in page and "redis.internal" in page  # noqa: PT018
        assert_no_secret(page)


def test_log_lines_mask_url_passwords() -> None:
    formatter = MaskingFormatter("%(message)s")
    record = logging.LogRecord("kiln", logging.WARNING, __file__, 1, "connecting to %s", (REDIS,), None)
    assert formatter.format(record) == "connecting to redis://:********@redis.internal:6379/0"
    configured = [handler.formatter for handler in logging.getLogger().handlers]
    assert any(isinstance(formatter, MaskingFormatter) for formatter in configured)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:pw@h:1/0", "redis://:********@h:1/0"),
        ("postgres://kiln:p@ss:w@db/kiln", "postgres://kiln:********@db/kiln"),
        ("rediss://user:pw@h?ssl_cert_reqs=none", "rediss://user:********@h?ssl_cert_reqs=none"),
        ("https://h/x?a=1&token=abc&b=2", "https://h/x?a=1&token=********&b=2"),
        ("token=abc&next=x", "token=********&next=x"),
        ("monkey=banana", "monkey=banana"),
        ("redis://h:6379/0 and http://h:80/", "redis://h:6379/0 and http://h:80/"),
        ("redis+socket:///var/run/redis.sock", "redis+socket:///var/run/redis.sock"),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_start_up_errors_never_echo_a_password() -> None:
    result = load_settings(REDIS_URL=f"amqp://kiln:{PASSWORD}@rabbit//")
    assert "REDIS_URL must start with redis://" in result.stderr
    assert_no_secret(result.stderr)
    result = load_settings(REDIS_URL=f"redis://:{PASSWORD}@redis.internal:six/0")
    assert "REDIS_URL has a port that is not a number" in result.stderr
    assert_no_secret(result.stderr)
    result = load_settings(DATABASE_URL=f"nosuchdb://kiln:{PASSWORD}@db/kiln")
    assert "DATABASE_URL cannot be read" in result.stderr
    assert_no_secret(result.stderr)
