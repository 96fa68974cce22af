"""blueprint/checks/configuration.py: the live settings, and Django's `check --deploy` beside Kiln's."""

from __future__ import annotations

import dataclasses

import pytest
from django.core import checks

from blueprint.checks import configuration
from tests.blueprint.conftest import GOOD_SECRET
from tests.support.s3 import media_settings_use


def settings_findings(settings) -> list[str]:
    return [str(finding) for finding in configuration.check_settings(settings)]


def test_production_settings_have_no_findings(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    assert settings_findings(settings) == []


def test_it_reports_debug_on(settings) -> None:
    settings.DEBUG = True
    settings.SECRET_KEY = GOOD_SECRET
    assert settings_findings(settings) == ["settings: DEBUG: on: set DEBUG=false in production"]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "missing"),
        ("change-me-to-50-random-characters", "a published value: generate a new one"),
        ("django-insecure-kiln-development-only", "a published value: generate a new one"),
        ("short-but-random-9f8e7d", "fewer than 50 characters or 5 distinct ones"),
        ("ab" * 30, "fewer than 50 characters or 5 distinct ones"),
    ],
)
def test_it_reports_a_missing_or_insecure_secret_key(settings, secret: str, message: str) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = secret
    assert settings_findings(settings) == [f"settings: SECRET_KEY: {message}"]


def test_it_reports_a_visibility_timeout_not_above_every_time_limit(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 300,
    }
    settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
    assert settings_findings(settings) == [
        "settings: CELERY_BROKER_TRANSPORT_OPTIONS visibility_timeout: 300 s is not above the longest time "
        "limit (300 s): a running job would be handed to a second worker (KILN_VISIBILITY_TIMEOUT)"
    ]


@pytest.mark.parametrize(("cores", "default"), [(2, 4), (4, 8), (8, 10)])
def test_it_reports_a_cpu_bound_pool_above_twice_the_cores(settings, cores: int, default: int) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.KILN_CORES = cores
    high = next(queue for queue in settings.KILN_QUEUES if queue.name == "high")
    assert dataclasses.replace(high, autoscale=(2, 10)).process_ceiling(cores) == default  # as declared
    settings.KILN_QUEUES = tuple(
        dataclasses.replace(queue, autoscale=(2, 2 * cores)) if queue is high else queue
        for queue in settings.KILN_QUEUES
    )
    assert settings_findings(settings) == []
    settings.KILN_QUEUES = tuple(
        dataclasses.replace(queue, autoscale=(2, 2 * cores + 1)) if queue.name == "high" else queue
        for queue in settings.KILN_QUEUES
    )
    assert settings_findings(settings) == [
        f"settings: KILN_HIGH_MAX_PROCESSES: {2 * cores + 1} processes on {cores} cores: the high pool's work "
        "is CPU-bound, and more than 2 a core add contention, not throughput, while every page waits longer: "
        f"at most {2 * cores}, or unset"
    ]


def test_it_reports_broker_and_result_backend_visibility_timeouts_that_differ(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {}
    broker = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 7200,
    }
    assert broker == 3600
    assert settings_findings(settings) == [
        "settings: CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS visibility_timeout: 3600 s differs from the "
        "broker's 7200 s: give both KILN_VISIBILITY_TIMEOUT"
    ]


def test_django_warnings_are_findings_at_fail_level_warning_and_notes_at_error() -> None:
    messages = [
        checks.Warning("cookies travel in clear", id="security.W012"),
        checks.Error("broken", id="kiln.E001"),
        checks.Warning("no preload", id="security.W021"),
    ]
    found, notes = configuration.django_findings(messages, checks.WARNING)
    assert [str(f) for f in found] == [
        "django check --deploy: security.W012: cookies travel in clear",
        "django check --deploy: kiln.E001: broken",
    ]
    assert notes == ["note: django check --deploy: security.W021: no preload"]
    found, notes = configuration.django_findings(messages, checks.ERROR)
    assert [f.setting for f in found] == ["kiln.E001"]
    assert len(notes) == 2


def test_it_reports_a_media_store_that_refuses_its_keys_without_showing_them(settings, s3_media) -> None:

    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    assert not [line for line in settings_findings(settings) if "KILN_MEDIA_STORAGE" in line]
    environ = {**s3_media.environment(s3_media.prefix), "KILN_S3_ACCESS_KEY_ID": "someone-else"}
    media_settings_use(settings, environ)
    [media] = [line for line in settings_findings(settings) if "KILN_MEDIA_STORAGE" in line]
    assert "refused: it does not know the access key (KILN_S3_ACCESS_KEY_ID)" in media
    assert s3_media.secret_key not in media
