"""The process files (supervisord's deploy/supervisor/*.conf, systemd's deploy/systemd/*.service) against the
contracts a Kiln process must keep. Programs are recognised by their command (`celery ... worker|beat|flower`),
not by their names: a renamed program keeps its contract.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blueprint.checks import Finding
from config.queues import QueueSpec, longest_time_limit, spec_of

LOOPBACK = ("127.", "::1", "localhost")
# supervisord's and systemd's defaults when the file does not say.
SUPERVISOR_STOPWAITSECS = 10
SYSTEMD_TIMEOUT_STOP_SEC = 90.0
# celery options that take a separate value: the word after them is not the subcommand.
CELERY_GLOBAL_OPTIONS_WITH_VALUE = frozenset(
    {"-A", "--app", "-b", "--broker", "--result-backend", "--workdir"}
)


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


def check_programs(programs: list[Program], settings: Any, *, systemd: bool, where: str) -> Iterator[Finding]:
    """The contracts of one set of process files (supervisord's, or systemd's units): every Celery program
    stops without killing a job, each declared queue (KILN_QUEUES) has its own pool as declared, Flower is on
    loopback, beat under the election, one per host. `where` names the set in a finding that concerns no single file."""
    queues = settings.KILN_QUEUES
    longest = longest_time_limit(queues)
    declared = [queue.name for queue in queues]
    consumers: dict[str, list[Program]] = {}
    for program in programs:
        if program.role is None:
            continue
        yield from check_stop_wait(program, longest, systemd=systemd)
        if program.role == "worker":
            yield from check_worker_stop(program, systemd=systemd)
            consumed = program.queues(declared)
            yield from check_pool(program, consumed, queues, systemd=systemd)
            for name in consumed:
                consumers.setdefault(name, []).append(program)
        if program.role == "flower":
            yield from check_flower(program)
    yield from check_beats(programs, systemd=systemd)
    if consumers:  # a set of files that runs workers at all must run a pool for every declared queue
        for queue in queues:
            if queue.name not in consumers:
                yield Finding(
                    where,
                    f"queue {queue.name}",
                    f"declared in KILN_QUEUES but no worker program consumes it: its jobs would wait for "
                    f"ever (add worker-{queue.pool} with --queues={queue.name}; README: Add your own queue)",
                )


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


def nice_level(program: Program, *, systemd: bool) -> int | None:
    """The CPU priority the program runs at: a `nice` prefix (`nice -n 10`; nice alone means 10), or
    systemd's Nice=; None when it is not a number (a variable, say)."""
    argv = program.argv
    raw = "0"
    if argv and Path(argv[0]).name == "nice":
        raw = "10"
        words = argv[1:]
        for index, word in enumerate(words):
            if word in ("-n", "--adjustment") and index + 1 < len(words):
                raw = words[index + 1]
                break
            if word.startswith("--adjustment="):
                raw = word.split("=", 1)[1]
                break
            if word.startswith("-n") and len(word) > 2:
                raw = word[2:]
                break
            if not word.startswith("-"):
                break  # the command nice runs
    elif systemd:
        raw = program.options.get("Nice", "0") or "0"
    try:
        return int(raw)
    except ValueError:
        return None


def _variable(word: str) -> str | None:
    """The variable a supervisord (`%(ENV_X)s`) or systemd (`${X}`, `$X`) command word names, if any."""
    match = re.fullmatch(r"%\(ENV_(\w+)\)s|\$\{(\w+)\}|\$(\w+)", word.strip())
    return next((group for group in match.groups() if group), None) if match else None


def _size_matches(word: str, variable: str, value: int) -> bool:
    """A pool size in a command is the declared number, or the variable `manage.py kiln run` sets to it."""
    return word.strip() == str(value) or _variable(word) == variable


def check_pool(
    program: Program, consumed: set[str], queues: tuple[QueueSpec, ...], *, systemd: bool
) -> Iterator[Finding]:
    """A worker program is one declared queue's pool, sized, named and niced as KILN_QUEUES declares it."""
    where = f"{program.name} {program.command_key}"
    undeclared = sorted(consumed - {queue.name for queue in queues})
    if undeclared:
        yield Finding(
            program.file, where, f"consumes {', '.join(undeclared)}, which KILN_QUEUES does not declare"
        )
    if len(consumed) > 1:
        yield Finding(
            program.file,
            where,
            f"the worker consumes several queues ({','.join(sorted(consumed))}): one queue's jobs could take "
            "a process another queue needs; give each pool --queues of its own",
        )
        return
    queue = spec_of(next(iter(consumed)), queues) if consumed else None
    if queue is None:
        return
    hostname = program.option("-n", "--hostname") or ""
    if not hostname.startswith(f"{queue.pool}@"):
        yield Finding(
            program.file,
            where,
            f"--hostname is {hostname or 'unset'}: name the worker {queue.pool}@%h (the dashboard, `jobs scale` "
            "and the Prometheus pool rules find a pool's workers by that name)",
        )
    yield from _check_pool_size(program, queue, where)
    level = nice_level(program, systemd=systemd)
    if level != queue.nice:
        fix = (
            f"Nice={queue.nice}"
            if systemd
            else (f"nice -n {queue.nice} before the command" if queue.nice else "no nice")
        )
        yield Finding(
            program.file,
            f"{program.name} {'Nice' if systemd else 'command'}",
            f"the {queue.name} pool runs at nice {level}, KILN_QUEUES declares {queue.nice} ({fix}): "
            "the pools' CPU priorities keep the queues' order",
        )
    if systemd:
        yield from check_cpu_weight(program, queue)


def check_cpu_weight(program: Program, queue: QueueSpec) -> Iterator[Finding]:
    """Under systemd each unit is its own cgroup: Nice= orders the processes inside the unit only, and the
    units share the CPU by CPUWeight= (100 when unset, the web's). A pool below the web needs the weight of
    its nice level, or a saturated pool takes the cores from the pages."""
    raw = program.options.get("CPUWeight", "").strip()
    if raw == str(queue.cpu_weight):
        return
    shown = raw or "unset (100, the web's)"
    yield Finding(
        program.file,
        f"{program.name} CPUWeight",
        f"{shown}: the {queue.name} pool runs at nice {queue.nice}, whose share "
        f"between units is CPUWeight={queue.cpu_weight}; Nice= alone orders processes only inside the unit",
    )


def _check_pool_size(program: Program, queue: QueueSpec, where: str) -> Iterator[Finding]:
    variables = queue.pool_variables()
    autoscale = program.option("--autoscale")
    concurrency = program.option("-c", "--concurrency")
    if queue.autoscale is not None:
        minimum, maximum = queue.autoscale
        parts = (autoscale or "").split(",")
        if (
            autoscale is None
            or len(parts) != 2
            or not _size_matches(parts[0], f"{queue.variable_prefix}MAX_PROCESSES", maximum)
            or not _size_matches(parts[1], f"{queue.variable_prefix}MIN_PROCESSES", minimum)
        ):
            yield Finding(
                program.file,
                where,
                f"--autoscale is {autoscale or 'unset'}: the {queue.name} pool autoscales between {minimum} and "
                f"{maximum} (--autoscale=${{{queue.variable_prefix}MAX_PROCESSES}},"
                f"${{{queue.variable_prefix}MIN_PROCESSES}})",
            )
        return
    ((variable, value),) = variables.items()
    if autoscale is not None or concurrency is None or not _size_matches(concurrency, variable, value):
        yield Finding(
            program.file,
            where,
            f"{'--autoscale' if autoscale else '--concurrency'} is {autoscale or concurrency or 'unset'}: the "
            f"{queue.name} pool has {value} processes (--concurrency=${{{variable}}})",
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


def elected(program: Program) -> bool:
    """Run under `manage.py kiln elect`: only while this host holds the beat lock."""
    words = program.argv
    return any(words[index : index + 2] == ["kiln", "elect"] for index in range(len(words)))


def check_beats(programs: list[Program], *, systemd: bool) -> Iterator[Finding]:
    """Beat runs on every web host, each under the election (`kiln elect`), which lets one schedule at a
    time; on one host, one beat."""
    beats = [p for p in programs if p.runs_beat for _ in range(int(p.options.get("numprocs", "1")))]
    for program in [p for p in programs if p.runs_beat]:
        if program.role == "worker":
            yield Finding(
                program.file,
                f"{program.name} command",
                "a worker with an embedded beat (-B) is never elected: it schedules on every host beside the "
                "elected beat; run beat as its own program under `manage.py kiln elect`",
            )
        elif not elected(program):
            yield Finding(
                program.file,
                f"{program.name} {program.command_key}",
                "beat not under `manage.py kiln elect -- celery ... beat`: it schedules whether or not its "
                "host holds the beat lock, beside the elected one",
            )
        else:
            yield from check_beat_stop(program, systemd=systemd)
    if len(beats) > 1:
        names = ", ".join(sorted({p.name for p in beats}))
        yield Finding(
            ", ".join(sorted({p.file for p in beats})),
            "beat",
            f"{len(beats)} beat processes ({names}): one per host; the election picks one across hosts",
        )


def check_beat_stop(program: Program, *, systemd: bool) -> Iterator[Finding]:
    """TERM to `kiln elect` only: it passes it to beat and waits for beat's stop. Sent to the group too,
    beat is stopped twice at once, its second TERM interrupting the first's save."""
    if systemd:
        kill_mode = program.options.get("KillMode", "control-group")
        if kill_mode != "mixed":
            yield Finding(
                program.file,
                f"{program.name} KillMode",
                f"{kill_mode} on beat: use mixed (TERM to `kiln elect` only, which passes it to beat"
                + ("; control-group sends beat a second TERM)" if kill_mode == "control-group" else ")"),
            )
    elif program.options.get("stopasgroup", "false").lower() == "true":
        yield Finding(
            program.file,
            f"{program.name} stopasgroup",
            "true on beat: TERM reaches beat beside `kiln elect`, which passes it on too; "
            "use stopasgroup=false and killasgroup=true",
        )
