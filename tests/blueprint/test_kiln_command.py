"""`manage.py kiln setup|ctl|check` called as a command."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.blueprint.conftest import GOOD_SECRET, SHIPPED, edit_section


@pytest.fixture
def private_var_dir(settings, tmp_path: Path) -> Path:
    settings.KILN_VAR_DIR = tmp_path / "var"
    settings.KILN_LOG_DIR = tmp_path / "var" / "log"
    settings.KILN_RUN_DIR = tmp_path / "var" / "run"
    settings.MEDIA_ROOT = tmp_path / "var" / "media"
    return tmp_path / "var"


def kiln(*args: str) -> str:
    out = StringIO()
    call_command("kiln", *args, stdout=out)
    return out.getvalue()


@pytest.mark.database
@pytest.mark.django_db
def test_setup_creates_admin_with_a_random_password_shown_once(settings, private_var_dir: Path) -> None:
    settings.KILN_SUPERUSER_PASSWORD = ""
    output = kiln("setup")
    password = output.split("created with password: ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password(password)
    assert len(password) >= 12
    assert (private_var_dir / "log").is_dir()
    assert (private_var_dir / "run").is_dir()

    again = kiln("setup")
    assert "password" not in again
    assert "Admin user 'admin' exists." in again
    admin.refresh_from_db()
    assert admin.check_password(password), "a second setup must not change the password"


@pytest.mark.database
@pytest.mark.django_db
def test_setup_takes_username_and_password_from_the_environment_settings(
    settings, private_var_dir: Path
) -> None:
    settings.KILN_SUPERUSER_USERNAME = "ops"
    settings.KILN_SUPERUSER_PASSWORD = "correct horse battery staple"
    output = kiln("setup")
    assert "correct horse" not in output
    assert get_user_model().objects.get(username="ops").check_password("correct horse battery staple")


def test_ctl_says_kiln_is_not_running_when_there_is_no_supervisor_socket(private_var_dir: Path) -> None:
    with pytest.raises(CommandError, match="Kiln is not running here"):
        kiln("ctl", "status")


@pytest.mark.django_db
def test_every_model_change_has_a_migration() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def secure_production(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.ALLOWED_HOSTS = ["kiln.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000


def test_kiln_check_passes_on_the_shipped_files_with_production_settings(settings) -> None:
    secure_production(settings)
    out = StringIO()
    call_command("kiln", "check", "--deploy-dir", str(SHIPPED), stdout=out)
    assert out.getvalue().splitlines()[-1] == f"No findings in {SHIPPED} and the settings."


def test_kiln_check_prints_one_line_per_finding_and_exits_1(deploy: Path, settings) -> None:
    secure_production(settings)
    settings.DEBUG = True
    settings.SESSION_COOKIE_SECURE = False
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-high", "stopasgroup=false", "stopasgroup=true"
    )
    out = StringIO()
    with pytest.raises(CommandError, match=r"3 finding\(s\)") as raised:
        call_command("kiln", "check", "--deploy-dir", str(deploy), stdout=out)
    assert raised.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "settings: DEBUG: on: set DEBUG=false in production"
    assert lines[1].startswith("supervisor/kiln.conf: [program:worker-high] stopasgroup: true on a worker")
    assert lines[2].startswith(
        "django check --deploy: security.W012: SESSION_COOKIE_SECURE is not set to True"
    )


def test_kiln_check_with_fail_level_error_keeps_django_warnings_as_notes(settings) -> None:
    secure_production(settings)
    settings.SESSION_COOKIE_SECURE = False
    out = StringIO()
    call_command("kiln", "check", "--deploy-dir", str(SHIPPED), "--fail-level", "ERROR", stdout=out)
    assert "note: django check --deploy: security.W012" in out.getvalue()
