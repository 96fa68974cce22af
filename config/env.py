"""Strict readers for settings taken from the environment.

Each helper takes the environment mapping explicitly, so only `config/settings.py` touches `os.environ`
and tests can feed any mapping. A value that cannot be read raises `ImproperlyConfigured` naming the
variable: a typo in a deploy's env file stops start-up instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from config.queues import QueueSpec

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_MISSING = object()


def env_str(environ: Mapping[str, str], name: str, default: str | object = _MISSING) -> str:
    value = environ.get(name)
    if value is None or value == "":
        if default is _MISSING:
            raise ImproperlyConfigured(f"{name} must be set")
        return str(default)
    return value


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {environ[name]!r}")


def env_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    return env_int(environ, name, default, minimum=1, maximum=65535)


def env_list(environ: Mapping[str, str], name: str, default: list[str] | object = _MISSING) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if default is _MISSING:
            raise ImproperlyConfigured(f"{name} must be set (a comma-separated list)")
        return list(default)  # type: ignore[call-overload]
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(environ: Mapping[str, str], name: str, default: Path) -> Path:
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    path = Path(raw)
    if not path.is_absolute():
        raise ImproperlyConfigured(f"{name} must be an absolute path, got {raw!r}")
    return path


def env_int_map(
    environ: Mapping[str, str],
    name: str,
    default: Mapping[str, int],
    *,
    example: str = "high=60,default=900",
    minimum: int = 0,
) -> dict[str, int]:
    """`key=number` pairs separated by commas (`high=60,default=900`); keys not given keep their default.
    A key may hold spaces and colons (`purge: nightly=1800`), not a comma or an equals sign."""
    raw = environ.get(name, "").strip()
    values = dict(default)
    if raw == "":
        return values
    for item in raw.split(","):
        key, sep, number = item.partition("=")
        key, number = key.strip(), number.strip()
        if not sep or not key or not number.isdigit():
            raise ImproperlyConfigured(f"{name} must look like {example}, got {raw!r}")
        if int(number) < minimum:
            raise ImproperlyConfigured(f"{name} must give {key!r} at least {minimum}, got {number}")
        values[key] = int(number)
    return values


def env_admins(environ: Mapping[str, str], name: str) -> list[tuple[str, str]]:
    """`Name <address>` or bare addresses, comma-separated, as Django's ADMINS."""
    admins = []
    for item in env_list(environ, name, []):
        display, _, rest = item.partition("<")
        address = rest.rstrip(">").strip() if rest else display.strip()
        if "@" not in address:
            raise ImproperlyConfigured(f"{name} must hold e-mail addresses, got {item!r}")
        admins.append(((display.strip() if rest else address), address))
    return admins


def env_queues(environ: Mapping[str, str], queues: Sequence[QueueSpec], cores: int) -> tuple[QueueSpec, ...]:
    """The declared queues with what the environment overrides: each pool's size (`KILN_<QUEUE>_CONCURRENCY`,
    or `KILN_<QUEUE>_MIN_PROCESSES` and `_MAX_PROCESSES`) and the wait thresholds (`KILN_QUEUE_WAITS`,
    `KILN_QUEUE_WAITS_CRITICAL`, as `high=60,default=900`). An autoscaling pool's maximum defaults to its
    ceiling on `cores` cores (QueueSpec.process_ceiling)."""
    names = {queue.name for queue in queues}
    waits = env_int_map(environ, "KILN_QUEUE_WAITS", {queue.name: queue.wait_warning for queue in queues})
    critical = env_int_map(
        environ, "KILN_QUEUE_WAITS_CRITICAL", {queue.name: queue.wait_critical for queue in queues}
    )
    for variable, values in (("KILN_QUEUE_WAITS", waits), ("KILN_QUEUE_WAITS_CRITICAL", critical)):
        unknown = sorted(set(values) - names)
        if unknown:
            raise ImproperlyConfigured(
                f"{variable} names queues that are not declared: {', '.join(unknown)} "
                f"(KILN_QUEUES has {', '.join(sorted(names))})"
            )
    configured = []
    for queue in queues:
        prefix = queue.variable_prefix
        if waits[queue.name] > critical[queue.name]:
            raise ImproperlyConfigured(
                f"KILN_QUEUE_WAITS for {queue.name} ({waits[queue.name]} s) must not exceed "
                f"KILN_QUEUE_WAITS_CRITICAL ({critical[queue.name]} s)"
            )
        changes: dict[str, object] = {
            "wait_warning": waits[queue.name],
            "wait_critical": critical[queue.name],
        }
        if queue.autoscale is not None:
            maximum = env_int(environ, f"{prefix}MAX_PROCESSES", queue.process_ceiling(cores), minimum=1)
            minimum = env_int(
                environ,
                f"{prefix}MIN_PROCESSES",
                min(queue.autoscale[0], maximum),
                minimum=1,
                maximum=maximum,
            )
            changes["autoscale"] = (minimum, maximum)
        else:
            changes["concurrency"] = env_int(
                environ, f"{prefix}CONCURRENCY", queue.concurrency or 1, minimum=1
            )
        configured.append(dataclasses.replace(queue, **changes))
    return tuple(configured)
