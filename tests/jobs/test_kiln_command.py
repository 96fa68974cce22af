from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = [pytest.mark.database, pytest.mark.django_db]


@pytest.fixture(autouse=True)
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


def test_setup_takes_username_and_password_from_the_environment_settings(settings) -> None:
    settings.KILN_SUPERUSER_USERNAME = "ops"
    settings.KILN_SUPERUSER_PASSWORD = "correct horse battery staple"
    output = kiln("setup")
    assert "correct horse" not in output
    assert get_user_model().objects.get(username="ops").check_password("correct horse battery staple")


def test_ctl_says_kiln_is_not_running_when_there_is_no_supervisor_socket() -> None:
    with pytest.raises(CommandError, match="Kiln is not running here"):
        kiln("ctl", "status")


def test_every_model_change_has_a_migration() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())
