"""`manage.py kiln check`: Kiln's live settings and the files in deploy/ against the contracts they must keep.

Pure functions over a settings object and a directory, so tests feed them broken copies. Programs are
recognised by their command (`celery ... worker|beat|flower`), not by their names: a renamed program
keeps its contract. Each finding names a file (relative to the deploy dir, or `settings`) and a setting.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

LOOPBACK = ("127.", "::1", "localhost")
# The kombu default when CELERY_BROKER_TRANSPORT_OPTIONS has no visibility_timeout.
KOMBU_VISIBILITY_TIMEOUT = 3600
# supervisord's and systemd's defaults when the file does not say.
SUPERVISOR_STOPWAITSECS = 10
SYSTEMD_TIMEOUT_STOP_SEC = 90.0
# nginx's default client_max_body_size.
NGINX_DEFAULT_BODY_SIZE = 1024 * 1024
# Values of deploy/env.example and the development default: never a production secret.
KNOWN_SECRETS = ("change-me-to-50-random-characters", "django-insecure-kiln-development-only")
# Kiln reports these itself (DEBUG, SECRET_KEY), with the variable to fix.
DJANGO_CHECKS_KILN_REPORTS = frozenset({"security.W009", "security.W018"})
# Always notes, never findings: HSTS for every subdomain, and the browsers' preload list (which is hard
# to leave), are decisions about the whole domain, not about Kiln.
DJANGO_CHECKS_NOTES = frozenset({"security.W005", "security.W021"})
# celery options that take a separate value: the word after them is not the subcommand.
CELERY_GLOBAL_OPTIONS_WITH_VALUE = frozenset(
    {"-A", "--app", "-b", "--broker", "--result-backend", "--workdir"}
)


@dataclass(frozen=True)
class Finding:
    file: str
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.setting}: {self.message}"


@dataclass
class Program:
    """One process definition: a supervisord [program:x] or a systemd unit."""

    file: str
    name: str  # `[program:worker-high]` or `kiln-worker-high.service`
    argv: list[str]
    options: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def command_key(self) -> str:
        return "ExecStart" if self.name.endswith(".service") else "command"

    @property
    def celery_argv(self) -> list[str]:
        for index, word in enumerate(self.argv):
            if Path(word).name == "celery":
                return self.argv[index + 1 :]
        return []

    @property
    def role(self) -> str | None:
        """worker, beat, flower, ... or None for a program that is not Celery."""
        words = iter(self.celery_argv)
        for word in words:
            if word in CELERY_GLOBAL_OPTIONS_WITH_VALUE:
                next(words, None)
            elif not word.startswith("-"):
                return word
        return None

    def option(self, *names: str) -> str | None:
        """The value of a command-line option (`--x=v` or `--x v`), the last one winning."""
        value = None
        words = self.celery_argv
        for index, word in enumerate(words):
            for name in names:
                if word.startswith(f"{name}="):
                    value = word.split("=", 1)[1]
                elif word == name and index + 1 < len(words):
                    value = words[index + 1]
        return value

    def has_flag(self, *names: str) -> bool:
        return any(word in names for word in self.celery_argv)

    def queues(self, all_queues: list[str]) -> set[str]:
        """Without --queues a worker consumes every queue the app declares."""
        raw = self.option("-Q", "--queues")
        return set(raw.split(",")) if raw else set(all_queues)

    @property
    def runs_beat(self) -> bool:
        return self.role == "beat" or (self.role == "worker" and self.has_flag("-B", "--beat"))


# --- Reading the files ----------------------------------------------------------------------------------


def supervisor_programs(path: Path, relative: str) -> list[Program]:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(path)
    programs = []
    for section in parser.sections():
        if section.startswith("program:") and parser.has_option(section, "command"):
            options = dict(parser.items(section))
            programs.append(
                Program(
                    file=relative,
                    name=f"[{section}]",
                    argv=shlex.split(options["command"]),
                    options=options,
                    environment=parse_supervisor_environment(options.get("environment", "")),
                )
            )
    return programs


def parse_supervisor_environment(raw: str) -> dict[str, str]:
    pairs = re.findall(r'(\w+)=("[^"]*"|[^,]*)', raw)
    return {key: value.strip().strip('"') for key, value in pairs}


def systemd_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> keys -> every value given (systemd allows repeating a key); `\\` continues a line."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd_programs(directory: Path, relative_to: Path) -> list[Program]:
    programs = []
    for path in sorted(directory.glob("*.service")):
        service = systemd_unit(path).get("Service", {})
        exec_start = service.get("ExecStart", [""])[-1].lstrip("-@+!:")
        environment: dict[str, str] = {}
        for assignment in service.get("Environment", []):
            for pair in shlex.split(assignment):
                key, _, value = pair.partition("=")
                environment[key] = value
        programs.append(
            Program(
                file=str(path.relative_to(relative_to)),
                name=path.name,
                argv=shlex.split(exec_start),
                options={key: values[-1] for key, values in service.items()},
                environment=environment,
            )
        )
    return programs


def systemd_seconds(value: str) -> float:
    """A systemd time span (`600`, `10min`, `5min 30s`, `infinity`) in seconds."""
    if value.strip() == "infinity":
        return float("inf")
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units.get(unit or "s", 1)
    return total


# --- The contracts of the process definitions -------------------------------------------------------------


def longest_time_limit(settings: Any) -> int:
    limits = [hard for hard, _soft in settings.KILN_QUEUE_TIME_LIMITS.values()]
    return max([*limits, getattr(settings, "CELERY_TASK_TIME_LIMIT", None) or 0])


def check_programs(programs: list[Program], settings: Any, *, systemd: bool) -> Iterator[Finding]:
    longest = longest_time_limit(settings)
    all_queues = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    for program in programs:
        if program.role is None:
            continue
        yield from check_stop_wait(program, longest, systemd=systemd)
        if program.role == "worker":
            yield from check_worker_stop(program, systemd=systemd)
            yield from check_pool(program, all_queues, systemd=systemd)
        if program.role == "flower":
            yield from check_flower(program)
    yield from check_single_beat(programs)


def check_stop_wait(program: Program, longest: int, *, systemd: bool) -> Iterator[Finding]:
    if systemd:
        key, raw = "TimeoutStopSec", program.options.get("TimeoutStopSec")
        seconds = systemd_seconds(raw) if raw else SYSTEMD_TIMEOUT_STOP_SEC
    else:
        key, raw = "stopwaitsecs", program.options.get("stopwaitsecs")
        seconds = float(raw) if raw else SUPERVISOR_STOPWAITSECS
    if seconds <= longest:
        yield Finding(
            program.file,
            f"{program.name} {key}",
            f"{raw or 'unset, default'} ({seconds:g} s) is not above the longest hard time limit ({longest} s): "
            "a job still allowed to run would be killed on stop",
        )


def check_worker_stop(program: Program, *, systemd: bool) -> Iterator[Finding]:
    if systemd:
        kill_mode = program.options.get("KillMode", "control-group")
        if kill_mode != "mixed":
            yield Finding(
                program.file,
                f"{program.name} KillMode",
                f"{kill_mode} on a worker: use mixed (TERM to Celery's main process only"
                + (
                    "; control-group sends TERM to the pool children, which die mid-job, WorkerLostError)"
                    if kill_mode == "control-group"
                    else "; with process the final SIGKILL misses the pool children)"
                ),
            )
    elif program.options.get("stopasgroup", "false").lower() == "true":
        yield Finding(
            program.file,
            f"{program.name} stopasgroup",
            "true on a worker: TERM reaches the pool children, which die mid-job (WorkerLostError); "
            "use stopasgroup=false and killasgroup=true",
        )


def is_niced(program: Program, *, systemd: bool) -> bool:
    if program.argv and Path(program.argv[0]).name == "nice":
        return True
    return systemd and int(program.options.get("Nice", "0") or 0) > 0


def check_pool(program: Program, all_queues: list[str], *, systemd: bool) -> Iterator[Finding]:
    queues = program.queues(all_queues)
    where = f"{program.name} {program.command_key}"
    if {"high", "default"} <= queues:
        yield Finding(
            program.file,
            where,
            f"the worker consumes both high and default ({','.join(sorted(queues))}): "
            "a purge could take a process a thumbnail needs; give each pool --queues of its own",
        )
    elif "default" in queues and not is_niced(program, systemd=systemd):
        yield Finding(
            program.file,
            f"{program.name} {'Nice' if systemd else 'command'}",
            "the default pool is not niced: purges compete with thumbnails and the web for the CPU "
            + ("(set Nice=10)" if systemd else "(start the command with nice -n 10)"),
        )


def check_flower(program: Program) -> Iterator[Finding]:
    address = program.option("--address") or program.environment.get("FLOWER_ADDRESS", "")
    on_loopback = address.startswith(LOOPBACK)
    where = f"{program.name} {program.command_key}"
    if not on_loopback:
        yield Finding(
            program.file,
            where,
            f"Flower listens on {address or 'every address'}: bind it to 127.0.0.1 (--address=127.0.0.1); "
            "nginx is its only door",
        )
    unauthenticated = program.has_flag("--unauthenticated_api", "--unauthenticated-api") or (
        program.environment.get("FLOWER_UNAUTHENTICATED_API", "").lower() in {"1", "true", "yes", "on"}
    )
    if unauthenticated and not on_loopback:
        yield Finding(
            program.file,
            f"{program.name} FLOWER_UNAUTHENTICATED_API",
            "Flower's API is open to anyone who reaches its port, and the port is not on loopback",
        )


def check_single_beat(programs: list[Program]) -> Iterator[Finding]:
    beats = [p for p in programs if p.runs_beat for _ in range(int(p.options.get("numprocs", "1")))]
    if len(beats) > 1:
        names = ", ".join(sorted({p.name for p in beats}))
        yield Finding(
            ", ".join(sorted({p.file for p in beats})),
            "beat",
            f"{len(beats)} beat processes ({names}): exactly one per installation, or jobs are scheduled twice",
        )


# --- nginx ----------------------------------------------------------------------------------------------


@dataclass
class Block:
    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def get(self, name: str) -> list[str] | None:
        found = [args for directive, args in self.directives if directive == name]
        return found[-1] if found else None


def nginx_tokens(text: str) -> Iterator[str]:
    for match in re.finditer(r'#[^\n]*|"(?:\\.|[^"])*"|\'(?:\\.|[^\'])*\'|[{};]|[^\s{};"\']+', text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        yield token[1:-1] if token[0] in "\"'" else token


def parse_nginx(text: str) -> Block:
    root = Block("root", [])
    stack, words = [root], []
    for token in nginx_tokens(text):
        if token == ";":
            if words:
                stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif token == "{":
            block = Block(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    return root


def nginx_location(server: Block, uri: str) -> Block | None:
    """The location nginx picks for `uri`: exact, then the longest prefix (^~ stops there), then the
    first matching regex, else that longest prefix."""
    locations = [b for b in server.children if b.name == "location"]
    prefix: Block | None = None
    for location in locations:
        modifier, pattern = location.args if len(location.args) == 2 else ("", location.args[0])
        if modifier == "=" and uri == pattern:
            return location
        longer = prefix is None or len(pattern) > len(prefix.args[-1])
        if modifier in ("", "^~") and uri.startswith(pattern) and longer:
            prefix = location
    if prefix is not None and prefix.args[0] == "^~":
        return prefix
    for location in locations:
        if len(location.args) == 2 and location.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if location.args[0] == "~*" else 0
            if re.search(location.args[1], uri, flags):
                return location
    return prefix


def nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    if match is None:
        raise ValueError(f"not an nginx size: {value!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def upload_paths() -> list[str]:
    """The URLs that take an image upload, from Kiln's URLconf."""
    return [reverse("thumbnails:images"), reverse("reports:upload", args=[1])]


def check_nginx(path: Path, relative: str, settings: Any) -> Iterator[Finding]:
    root = parse_nginx(path.read_text())
    # Kiln's server proxies to gunicorn; a TLS variant's http-to-https server only redirects.
    kiln = [
        server
        for server in root.children
        if server.name == "server"
        and any(c.name == "location" and c.get("proxy_pass") for c in server.children)
    ]
    if not kiln:
        yield Finding(relative, "server", "no server block proxies to gunicorn: is this Kiln's nginx file?")
        return
    for server in kiln:
        yield from check_nginx_upload_limits(server, relative, settings)
        yield from check_nginx_originals(server, relative)


def body_size(server: Block, location: Block | None) -> tuple[str, int]:
    for block in (location, server):
        value = block.get("client_max_body_size") if block else None
        if value:
            return value[0], nginx_size(value[0])
    return "unset (1m)", NGINX_DEFAULT_BODY_SIZE


def check_nginx_upload_limits(server: Block, relative: str, settings: Any) -> Iterator[Finding]:
    wanted = settings.KILN_UPLOAD_MAX_MB * 1024 * 1024
    for uri in upload_paths():
        location = nginx_location(server, uri)
        raw, size = body_size(server, location)
        if size != wanted:
            yield Finding(
                relative,
                f"location {' '.join(location.args) if location else '(none)'} client_max_body_size",
                f"{raw} for {uri}, but KILN_UPLOAD_MAX_MB is {settings.KILN_UPLOAD_MAX_MB}: "
                f"set client_max_body_size {settings.KILN_UPLOAD_MAX_MB}m there",
            )


def check_nginx_originals(server: Block, relative: str) -> Iterator[Finding]:
    location = nginx_location(server, "/media/originals/x")
    refused = location is not None and (
        (location.get("return") or ["200"])[0] in {"403", "404", "444"} or location.get("deny") == ["all"]
    )
    if not refused:
        yield Finding(
            relative,
            f"location {' '.join(location.args) if location else '(none)'}",
            "/media/originals/ is not refused: originals keep their GPS metadata; serve only /media/renditions/",
        )


# --- Settings -------------------------------------------------------------------------------------------


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


def check_visibility_timeout(settings: Any) -> Iterator[Finding]:
    broker = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get(
        "visibility_timeout", KOMBU_VISIBILITY_TIMEOUT
    )
    backend_options = getattr(settings, "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS", None) or {}
    backend = backend_options.get("visibility_timeout", KOMBU_VISIBILITY_TIMEOUT)
    longest = longest_time_limit(settings)
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


# --- The whole pass -------------------------------------------------------------------------------------


def check_deploy_dir(deploy_dir: Path, settings: Any) -> list[Finding]:
    """Every finding in the files of deploy_dir (supervisor/*.conf, systemd/*.service, nginx/*.conf)."""
    findings: list[Finding] = []
    supervisor = [
        program
        for path in sorted((deploy_dir / "supervisor").glob("*.conf"))
        for program in supervisor_programs(path, str(path.relative_to(deploy_dir)))
    ]
    findings += check_programs(supervisor, settings, systemd=False)
    systemd_dir = deploy_dir / "systemd"
    if systemd_dir.is_dir():
        findings += check_programs(systemd_programs(systemd_dir, deploy_dir), settings, systemd=True)
    for path in sorted((deploy_dir / "nginx").glob("*.conf")):
        findings += check_nginx(path, str(path.relative_to(deploy_dir)), settings)
    return findings
