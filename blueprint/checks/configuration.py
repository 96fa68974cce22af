"""The live settings against what a production server needs, and Django's own `check --deploy`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from blueprint.checks import Finding
from config.queues import longest_time_limit

# The kombu default when CELERY_BROKER_TRANSPORT_OPTIONS has no visibility_timeout.
KOMBU_VISIBILITY_TIMEOUT = 3600
# Values of deploy/env.example and the development default: never a production secret.
KNOWN_SECRETS = ("change-me-to-50-random-characters", "django-insecure-kiln-development-only")
# Kiln reports these itself (DEBUG, SECRET_KEY), with the variable to fix.
DJANGO_CHECKS_KILN_REPORTS = frozenset({"security.W009", "security.W018"})
# Always notes, never findings: HSTS for every subdomain, and the browsers' preload list (which is hard
# to leave), are decisions about the whole domain, not about Kiln.
DJANGO_CHECKS_NOTES = frozenset({"security.W005", "security.W021"})


def check_settings(settings: Any) -> Iterator[Finding]:
    if settings.DEBUG:
        yield Finding("settings", "DEBUG", "on: set DEBUG=false in production")
    try:
        secret = settings.SECRET_KEY or ""
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        secret = ""
    if not secret:
        yield Finding("settings", "SECRET_KEY", "missing")
    elif secret in KNOWN_SECRETS or secret.startswith("django-insecure-"):
        yield Finding("settings", "SECRET_KEY", "a published value: generate a new one")
    elif len(secret) < 50 or len(set(secret)) < 5:
        yield Finding("settings", "SECRET_KEY", "fewer than 50 characters or 5 distinct ones")
    yield from check_visibility_timeout(settings)
    yield from check_pool_ceilings(settings)
    yield from check_media()


def check_pool_ceilings(settings: Any) -> Iterator[Finding]:
    """A CPU-bound pool (QueueSpec.per_core) scaled above its share of this machine's cores renders no
    faster and takes the CPU from the web."""
    cores = settings.KILN_CORES
    for queue in settings.KILN_QUEUES:
        if queue.per_core is None or queue.autoscale is None:
            continue
        ceiling = queue.per_core * cores
        if queue.autoscale[1] > ceiling:
            yield Finding(
                "settings",
                f"{queue.variable_prefix}MAX_PROCESSES",
                f"{queue.autoscale[1]} processes on {cores} core{'s' if cores != 1 else ''}: the {queue.name} "
                f"pool's work is CPU-bound, and more than {queue.per_core} a core add contention, not "
                f"throughput, while every page waits longer: at most {ceiling}, or unset",
            )


def check_media() -> Iterator[Finding]:
    """The media store answers with these keys: a write, a read and a delete of a small object succeed."""
    from mediastore import store

    problem = store.problem()
    if problem:
        yield Finding("settings", "KILN_MEDIA_STORAGE", problem)


def check_visibility_timeout(settings: Any) -> Iterator[Finding]:
    broker = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get(
        "visibility_timeout", KOMBU_VISIBILITY_TIMEOUT
    )
    backend_options = getattr(settings, "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS", None) or {}
    backend = backend_options.get("visibility_timeout", KOMBU_VISIBILITY_TIMEOUT)
    longest = longest_time_limit(settings.KILN_QUEUES)
    if broker <= longest:
        yield Finding(
            "settings",
            "CELERY_BROKER_TRANSPORT_OPTIONS visibility_timeout",
            f"{broker} s is not above the longest time limit ({longest} s): a running job would be "
            "handed to a second worker (KILN_VISIBILITY_TIMEOUT)",
        )
    if backend != broker:
        yield Finding(
            "settings",
            "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS visibility_timeout",
            f"{backend} s differs from the broker's {broker} s: give both KILN_VISIBILITY_TIMEOUT",
        )


def django_deploy_checks() -> list[checks.CheckMessage]:
    """Django's `check --deploy`, without what Kiln reports itself and what the settings silence."""
    messages = checks.run_checks(include_deployment_checks=True)
    return [m for m in messages if not m.is_silenced() and m.id not in DJANGO_CHECKS_KILN_REPORTS]


def django_findings(
    messages: Iterable[checks.CheckMessage], fail_level: int
) -> tuple[list[Finding], list[str]]:
    """Messages at or above fail_level are findings; the others are notes, printed but not failing."""
    findings, notes = [], []
    for message in messages:
        text = message.msg.splitlines()[0]
        if message.level >= fail_level and message.id not in DJANGO_CHECKS_NOTES:
            findings.append(Finding("django check --deploy", message.id or "?", text))
        else:
            notes.append(f"note: django check --deploy: {message.id}: {text}")
    return findings, notes
