"""deploy/systemd as it ships: kiln.conf's commands, and the stop contract in systemd's words."""

from __future__ import annotations

import re
import shlex

import pytest

from blueprint.checks.programs import systemd_unit
from tests.deploy.test_supervisor import kiln_conf
from tests.support.processes import REPO

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = {
    "web": "kiln-web.service",
    "worker-high": "kiln-worker-high.service",
    "worker-default": "kiln-worker-default.service",
    "beat": "kiln-beat.service",
    "flower": "kiln-flower.service",
}
ENV_EXAMPLE = (REPO / "deploy" / "env.example").read_text()


def env_example_value(name: str) -> str:
    return re.search(rf"^{name}=(.*)$", ENV_EXAMPLE, re.MULTILINE).group(1)


def service(program: str) -> dict[str, list[str]]:
    return systemd_unit(SYSTEMD / UNITS[program])["Service"]


def test_there_is_one_unit_per_kiln_conf_program_and_a_target() -> None:
    assert {path.name for path in SYSTEMD.iterdir()} == {*UNITS.values(), "kiln.target"}


@pytest.mark.parametrize("program", UNITS)
def test_each_unit_runs_the_command_of_its_kiln_conf_program(program: str) -> None:
    """Same flags; paths kiln.conf expands from KILN_VENV are env.example's literal ones (systemd
    takes the executable literally), other variables are ${...}, and Nice= replaces a `nice -n N` prefix."""
    raw = kiln_conf().get(f"program:{program}", "command")
    raw = raw.replace("%(ENV_KILN_VENV)s", env_example_value("KILN_VENV"))
    expected = shlex.split(re.sub(r"%\(ENV_(\w+)\)s", r"${\1}", raw))
    nice = None
    if expected[:2] == ["nice", "-n"]:
        nice, expected = [expected[2]], expected[3:]
    assert shlex.split(service(program)["ExecStart"][-1]) == expected
    assert service(program).get("Nice") == nice


@pytest.mark.parametrize("program", UNITS)
def test_each_unit_stops_like_kiln_conf_and_belongs_to_kiln_target(program: str) -> None:
    unit = systemd_unit(SYSTEMD / UNITS[program])
    options = {key: values[-1] for key, values in unit["Service"].items()}
    assert options["User"] == env_example_value("KILN_USER") == "www-data"
    assert options["WorkingDirectory"] == env_example_value("KILN_HOME")
    assert options["EnvironmentFile"] == "/etc/kiln/kiln.env"
    assert options["KillSignal"] == "SIGTERM"
    # TERM to the main process only; the last-resort SIGKILL to the whole cgroup.
    assert options["KillMode"] == "mixed"
    assert int(options["TimeoutStopSec"]) == int(kiln_conf().get(f"program:{program}", "stopwaitsecs"))
    assert options["Restart"] == "always"
    assert unit["Unit"]["PartOf"] == ["kiln.target"]
    assert unit["Install"]["WantedBy"] == ["kiln.target"]


def test_the_pools_run_below_the_web_by_nice_level_and_by_cgroup_weight() -> None:
    """Nice= orders processes inside a unit only; between units (each its own cgroup) CPUWeight= does, so
    each pool's weight is its nice level's (kernel weight / 1024 x 100) against the web's default 100."""
    options = {program: service(program) for program in UNITS}
    assert {program: options[program].get("Nice") for program in UNITS} == {
        "web": None,
        "worker-high": ["15"],
        "worker-default": ["19"],
        "beat": None,
        "flower": None,
    }
    assert {program: options[program].get("CPUWeight") for program in UNITS} == {
        "web": None,
        "worker-high": ["4"],
        "worker-default": ["1"],
        "beat": None,
        "flower": None,
    }


def test_beat_is_ordered_after_the_workers_so_it_stops_first() -> None:
    after = systemd_unit(SYSTEMD / UNITS["beat"])["Unit"]["After"][-1].split()
    assert {"kiln-worker-high.service", "kiln-worker-default.service"} <= set(after)


def test_the_readme_names_the_env_file_the_units_read() -> None:
    assert "/etc/kiln/kiln.env" in (REPO / "README.md").read_text()
