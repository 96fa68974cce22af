"""The smaller findings: the pool-scale verb has a ceiling, and the embedded SQLite file is private."""

from __future__ import annotations

import stat

import pytest
from django.test import Client

from jobs.models import AuditEntry
from tests.support.processes import stack_environment
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
