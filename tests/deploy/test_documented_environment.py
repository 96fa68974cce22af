"""The README and deploy/env.example stay true: every variable Kiln reads is documented, with its default."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from blueprint import stack
from tests.support.processes import REPO

SETTINGS = (REPO / "config" / "settings.py").read_text()
# config/env.py reads the variables of the queue declaration (KILN_QUEUES) on the settings' behalf.
ENV_READERS = (REPO / "config" / "env.py").read_text()
README = (REPO / "README.md").read_text()
ENV_EXAMPLE = (REPO / "deploy" / "env.example").read_text()


def settings_variables() -> set[str]:
    helpers = re.findall(r'env_\w+\(\s*(?:_env|environ),\s*"(\w+)"', SETTINGS + ENV_READERS)
    direct = re.findall(r'_env\.get\("(\w+)"', SETTINGS)
    # Each declared queue's pool size, e.g. KILN_HIGH_MAX_PROCESSES.
    pools = {variable for queue in settings.KILN_QUEUES for variable in queue.pool_variables()}
    return set(helpers) | set(direct) | pools


def conf_variables(name: str) -> set[str]:
    return set(re.findall(r"%\(ENV_(\w+)\)s", (REPO / "deploy" / "supervisor" / name).read_text()))


def env_example_lines() -> dict[str, bool]:
    """Variable -> whether env.example sets it (True) or only shows its default (False)."""
    found: dict[str, bool] = {}
    for line in ENV_EXAMPLE.splitlines():
        match = re.match(r"^(#?)([A-Z][A-Z0-9_]+)=", line)
        if match:
            found[match.group(2)] = found.get(match.group(2), False) or match.group(1) == ""
    return found


def test_settings_read_the_variables_the_issue_names() -> None:
    assert {
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "TIME_ZONE",
        "KILN_PORT",
        "KILN_FLOWER_PORT",
    } <= settings_variables()


@pytest.mark.parametrize("variable", sorted(settings_variables()))
def test_every_setting_variable_is_in_the_readme_table_and_env_example(variable: str) -> None:
    assert re.search(rf"^\| `{variable}` \| [^|]+ \|", README, re.MULTILINE), (
        f"{variable} missing from README"
    )
    assert variable in env_example_lines(), f"{variable} missing from deploy/env.example"


def test_env_example_sets_every_variable_kiln_conf_expands() -> None:
    lines = env_example_lines()
    for variable in conf_variables("kiln.conf"):
        assert lines.get(variable) is True, f"kiln.conf needs {variable}; env.example must set it"


def test_kiln_run_provides_every_variable_the_supervisor_files_expand() -> None:
    provided = set(stack.supervisor_environment())
    assert conf_variables("kiln.conf") | conf_variables("dev.conf") <= provided
