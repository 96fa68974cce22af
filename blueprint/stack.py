"""The process stack of one Kiln installation: what supervisord needs to run deploy/supervisor/*.conf."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from django.conf import settings

DEV_CONF = settings.BASE_DIR / "deploy" / "supervisor" / "dev.conf"


def programs() -> list[str]:
    """Every program of a `make run` stack, as `supervisorctl status` names them (kiln.conf plus dev.conf):
    one pool per declared queue."""
    return ["redis", "web", *(f"worker-{queue.pool}" for queue in settings.KILN_QUEUES), "beat", "flower"]


def supervisor_environment() -> dict[str, str]:
    """The variables kiln.conf and dev.conf expand, taken from Kiln's settings (so their defaults too)."""
    return {
        "KILN_HOME": str(settings.BASE_DIR),
        # The virtualenv running this command is the one the programs run in.
        "KILN_VENV": sys.prefix,
        "KILN_USER": settings.KILN_USER,
        "KILN_VAR_DIR": str(settings.KILN_VAR_DIR),
        "KILN_LOG_DIR": str(settings.KILN_LOG_DIR),
        "KILN_RUN_DIR": str(settings.KILN_RUN_DIR),
        "KILN_PORT": str(settings.KILN_PORT),
        "KILN_FLOWER_PORT": str(settings.KILN_FLOWER_PORT),
        "KILN_WEB_WORKERS": str(settings.KILN_WEB_WORKERS),
        # Each pool's size, as KILN_QUEUES declares it (and the environment overrides it).
        **{
            variable: str(value)
            for queue in settings.KILN_QUEUES
            for variable, value in queue.pool_variables().items()
        },
        "KILN_EMBEDDED_REDIS": "true" if settings.KILN_EMBEDDED_REDIS else "false",
        "KILN_REDIS_SOCKET": str(settings.KILN_REDIS_SOCKET),
        "KILN_SUPERVISOR_PASSWORD": supervisor_password(),
    }


def redis_py_url(url: str) -> str:
    """REDIS_URL as redis-py reads it: kombu's `redis+socket:///path` is redis-py's `unix:///path`."""
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


def election_environment() -> dict[str, str]:
    """single-beat's variables (what `kiln elect` runs with), from Kiln's settings: one lock per
    installation in its Redis, renewed every heartbeat, written with this host's name."""
    return {
        "SINGLE_BEAT_REDIS_SERVER": redis_py_url(settings.REDIS_URL),
        "SINGLE_BEAT_IDENTIFIER": settings.KILN_BEAT_LOCK_NAME,
        "SINGLE_BEAT_LOCK_TIME": str(settings.KILN_BEAT_LOCK_SECONDS),
        "SINGLE_BEAT_HEARTBEAT_INTERVAL": str(settings.KILN_BEAT_HEARTBEAT_SECONDS),
        "SINGLE_BEAT_HOST_IDENTIFIER": settings.KILN_BEAT_HOST,
        # Wait for the lock and take over when it expires (`supervised` would exit and leave it to the
        # process manager, which gives up after its start retries).
        "SINGLE_BEAT_WAIT_MODE": "heartbeat",
        # Taking the lock, losing it, a failing Redis: in the program's log.
        "SINGLE_BEAT_LOG_LEVEL": "info",
    }


def supervisor_password() -> str:
    """The password dev.conf's supervisord and supervisorctl share, made once per run directory (0600)."""
    path = settings.KILN_RUN_DIR / "supervisor.secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as secret:
            secret.write(password)
        return password


def runtime_directories() -> list[Path]:
    return [
        settings.KILN_VAR_DIR,
        settings.KILN_LOG_DIR,
        settings.KILN_RUN_DIR,
        settings.KILN_VAR_DIR / "redis",
        settings.MEDIA_ROOT,
    ]


def runtime_directories_create() -> None:
    for directory in runtime_directories():
        directory.mkdir(parents=True, exist_ok=True)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0
