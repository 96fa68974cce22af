"""Settings are read once at import: these tests import them in a fresh interpreter with a given environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.processes import REPO

PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.DEBUG)"
)
# Every variable settings.py reads, cleared so the developer's own environment cannot leak in.
SETTINGS_VARIABLES = [
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "TIME_ZONE", "KILN_PORT",
    "KILN_FLOWER_PORT", "KILN_VAR_DIR", "KILN_LOG_DIR", "KILN_VISIBILITY_TIMEOUT", "LOG_LEVEL",
    "KILN_HIGH_MIN_PROCESSES", "KILN_HIGH_MAX_PROCESSES", "KILN_DEFAULT_CONCURRENCY", "KILN_WEB_WORKERS",
    "KILN_TLS", "KILN_CSRF_TRUSTED_ORIGINS",
]  # fmt: skip


def load_settings(code: str = PRINT_SETTINGS, **variables: str | None) -> subprocess.CompletedProcess[str]:
    """Settings in a fresh interpreter: DEBUG=true as on a laptop unless given; a variable given as None is unset."""
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true")
    for name, value in variables.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_use_sqlite_and_the_embedded_redis_socket_never_port_6379() -> None:
    result = load_settings(KILN_VAR_DIR="/tmp/kiln-settings-test")
    assert result.returncode == 0, result.stderr
    engine, broker, debug = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "redis+socket:///tmp/kiln-settings-test/run/redis.sock"
    assert "6379" not in broker
    assert debug == "True"


def test_database_url_and_redis_url_switch_to_postgresql_and_a_system_redis() -> None:
    result = load_settings(
        DATABASE_URL="postgres://kiln@db.internal:5432/kiln", REDIS_URL="redis://10.0.0.5:6379/1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["django.db.backends.postgresql", "redis://10.0.0.5:6379/1"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DEBUG": "yes please"}, "DEBUG must be true or false"),
        ({"DEBUG": "false", "ALLOWED_HOSTS": "kiln.example"}, "SECRET_KEY must be set"),
        ({"DEBUG": "false", "SECRET_KEY": "s3cret-from-the-env-file"}, "ALLOWED_HOSTS must be set"),
        ({"KILN_PORT": "eighty"}, "KILN_PORT must be an integer"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE must be an IANA time zone"),
        ({"REDIS_URL": "amqp://guest@localhost//"}, "REDIS_URL must start with redis://"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL cannot be read"),
        (
            {"KILN_VISIBILITY_TIMEOUT": "300"},
            "KILN_VISIBILITY_TIMEOUT must be above the longest task time limit",
        ),
        (
            {"KILN_HIGH_MAX_PROCESSES": "10", "KILN_HIGH_MIN_PROCESSES": "12"},
            "KILN_HIGH_MIN_PROCESSES must be at most 10",
        ),
        ({"KILN_TLS": "maybe"}, "KILN_TLS must be true or false"),
        (
            {"KILN_WORKER_DEAD_AFTER_SECONDS": "2"},
            "KILN_WORKER_DEAD_AFTER_SECONDS must be 0 (off) or at least 3",
        ),
        (
            {"KILN_CSRF_TRUSTED_ORIGINS": "kiln.example.com"},
            "KILN_CSRF_TRUSTED_ORIGINS items must start with http:// or https://",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(variables: dict[str, str], message: str) -> None:
    result = load_settings(**variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_settings_load_when_every_secret_is_given() -> None:
    result = load_settings(DEBUG="false", SECRET_KEY="s3cret-from-the-env-file", ALLOWED_HOSTS="kiln.example")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2] == "False"


PRINT_PROXY_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SECURE_PROXY_SSL_HEADER, s.CSRF_TRUSTED_ORIGINS, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, sep='|')"
)


def test_plain_http_by_default_so_make_run_keeps_working_behind_no_proxy() -> None:
    result = load_settings(PRINT_PROXY_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "[]",
        "False",
        "False",
        "False",
        "0",
    ]


def test_kiln_tls_makes_cookies_secure_redirects_to_https_and_sends_hsts() -> None:
    result = load_settings(
        PRINT_PROXY_SETTINGS,
        KILN_TLS="true",
        KILN_CSRF_TRUSTED_ORIGINS="https://kiln.example.com, https://ops.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|")[1:] == [
        "['https://kiln.example.com', 'https://ops.example.com']",
        "True",
        "True",
        "True",
        "31536000",
    ]
