"""The smaller findings: the pool-scale verb has a ceiling, and the embedded SQLite file is private."""

from __future__ import annotations

import os
import re
import secrets
import stat

import pytest
from django.test import Client

from jobs.models import AuditEntry
from tests.config.test_settings import load_settings
from tests.support.processes import REPO, stack_environment
from tests.support.stack import run_manage


@pytest.mark.database
@pytest.mark.django_db
def test_scaling_a_pool_past_the_ceiling_is_refused_and_nothing_is_sent(
    django_user_model, app_broker
) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("sam", "sam@example.com", "pw"))
    page = client.post(
        "/admin/jobs/dashboard/action/",
        {"action": "scale", "pool": "high", "processes": "100000"},
        follow=True,
    ).content.decode()
    assert "At most 32 processes per pool (KILN_POOL_SCALE_MAX), not 100000" in page
    assert not AuditEntry.objects.filter(action="scale").exists()


def test_kiln_setup_leaves_the_sqlite_database_readable_by_its_owner_only(tmp_path) -> None:
    environ = stack_environment(
        tmp_path / "var", redis_url="unused", DJANGO_SUPERUSER_PASSWORD="pw-setup-test"
    )
    del environ["REDIS_URL"]
    result = run_manage(environ, "kiln", "setup")
    assert result.returncode == 0, result.stderr
    database = tmp_path / "var" / "db.sqlite3"
    for path in (database, *database.parent.glob("db.sqlite3-*")):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name}: {oct(path.stat().st_mode)}"


def test_check_deploy_with_the_production_env_example_and_tls_finds_nothing_kiln_could_fix(tmp_path) -> None:
    example = (REPO / "deploy" / "env.example").read_text().splitlines()
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    environ.update(line.split("=", 1) for line in example if line.strip() and not line.startswith("#"))
    environ.update(
        SECRET_KEY=secrets.token_urlsafe(50),  # the example's placeholder is meant to be replaced
        KILN_TLS="true",
        KILN_VAR_DIR=str(tmp_path),
        KILN_LOG_DIR=str(tmp_path / "log"),
        KILN_RUN_DIR=str(tmp_path / "run"),
        MEDIA_ROOT=str(tmp_path / "media"),
    )
    result = run_manage(environ, "check", "--deploy")
    assert result.returncode == 0, result.stderr
    # Left: only the two whole-domain promises, which the domain's owner makes with the two variables.
    assert set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr)) == {"W005", "W021"}
    environ.update(KILN_HSTS_INCLUDE_SUBDOMAINS="true", KILN_HSTS_PRELOAD="true")
    result = run_manage(environ, "check", "--deploy")
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_debug_is_off_unless_set_so_a_forgotten_variable_never_starts_a_debug_server() -> None:
    result = load_settings(DEBUG=None, SECRET_KEY="s3cret-from-the-env-file", ALLOWED_HOSTS="kiln.example")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2] == "False"
    # And with nothing set at all, start-up stops and says why, instead of running with a development key.
    result = load_settings(DEBUG=None)
    assert result.returncode != 0
    assert "SECRET_KEY must be set (DEBUG is off, as it is unless set" in result.stderr
