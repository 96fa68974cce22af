"""Add your own queue, as the README walks through it: one declaration in the settings, one program in the
process files. A third queue, `emails`, is declared in a settings module of the test's own (as a user edits
config/settings.py); `kiln check` names what is missing until its pool exists in supervisord's and systemd's
files, then passes; its tasks are routed to it by name and run only on its own pool, at its own nice level,
while the other two pools never see them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import Probe
from tests.support.processes import (
    REPO,
    RedisServer,
    program_command,
    running_workers,
    stack_environment,
    wait_for,
)

pytestmark = pytest.mark.processes

SETTINGS_MODULE = "kiln_with_emails"
SETTINGS = '''"""Kiln's settings with a third queue, as README "Add your own queue" declares it."""

from config.queues import QueueSpec, celery_queues, celery_routes, queues_check
from config.settings import *  # noqa: F403

KILN_QUEUES = queues_check(
    (
        *KILN_QUEUES,  # noqa: F405
        QueueSpec(
            name="emails",
            routes=("probe.record",),
            time_limit=30,
            soft_time_limit=25,
            wait_warning=120,
            wait_critical=600,
            concurrency=1,
            nice=5,
        ),
    ),
    default=CELERY_TASK_DEFAULT_QUEUE,  # noqa: F405
)
CELERY_TASK_QUEUES = celery_queues(KILN_QUEUES)
CELERY_TASK_ROUTES = celery_routes(KILN_QUEUES)
'''

# The supervisord program and the systemd unit the README tells the reader to add.
PROGRAM = """
[program:worker-emails]
command=nice -n 5 %(ENV_KILN_VENV)s/bin/celery --app=config worker
    --queues=emails
    --hostname=emails@%%h
    --concurrency=%(ENV_KILN_EMAILS_CONCURRENCY)s
    --loglevel=INFO
directory=%(ENV_KILN_HOME)s
user=%(ENV_KILN_USER)s
priority=300
autostart=true
autorestart=true
startsecs=3
startretries=10
stopsignal=TERM
stopwaitsecs=600
stopasgroup=false
killasgroup=true
redirect_stderr=true
stdout_logfile=%(ENV_KILN_LOG_DIR)s/%(program_name)s.log
"""


def add_systemd_unit(deploy: Path) -> None:
    text = (deploy / "systemd" / "kiln-worker-default.service").read_text()
    for old, new in (
        ("Nice=19", "Nice=5"),
        ("CPUWeight=1\n", "CPUWeight=33\n"),
        ("--queues=default", "--queues=emails"),
        ("--hostname=default@%%h", "--hostname=emails@%%h"),
        ("${KILN_DEFAULT_CONCURRENCY}", "${KILN_EMAILS_CONCURRENCY}"),
    ):
        assert old in text
        text = text.replace(old, new)
    (deploy / "systemd" / "kiln-worker-emails.service").write_text(text)


def kiln_check(environ: dict[str, str], deploy: Path) -> subprocess.CompletedProcess[str]:
    production = {
        **environ,
        "DEBUG": "false",
        "SECRET_KEY": "kiln-own-queue-test-secret-0123456789-abcdefghijklmnopq",
        "ALLOWED_HOSTS": "kiln.example.com",
        "KILN_TLS": "true",
        # As a server's env file has it: the tests' fixed 10 would be above twice this machine's cores.
        "KILN_HIGH_MAX_PROCESSES": "",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "kiln", "check", "--deploy-dir", str(deploy)],
        cwd=REPO,
        env=production,
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish_by_name(environ: dict[str, str], keys: list[str]) -> None:
    """Publish probe.record by its name only, in a process that runs the declaration: its route decides."""
    code = (
        "import time; from config.celery import app\n"
        f"for key in {keys!r}:\n"
        "    app.send_task('probe.record', args=[key, time.time(), 0.0], ignore_result=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_a_declared_queue_gets_its_own_pool_its_tasks_and_kiln_checks_it(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / f"{SETTINGS_MODULE}.py").write_text(SETTINGS)
    environ = stack_environment(
        tmp_path / "var",
        broker.url,
        DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
        PYTHONPATH=str(tmp_path / "settings"),
        KILN_EMAILS_CONCURRENCY="1",
    )
    deploy = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", deploy)

    missing = kiln_check(environ, deploy)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    for where in ("supervisor/", "systemd/"):
        assert (
            f"{where}: queue emails: declared in KILN_QUEUES but no worker program consumes it"
            in missing.stdout
        )

    with (deploy / "supervisor" / "kiln.conf").open("a") as conf:
        conf.write(PROGRAM)
    add_systemd_unit(deploy)
    passed = kiln_check(environ, deploy)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    conf = deploy / "supervisor" / "kiln.conf"
    specs = [
        (pool, environ, program_command(pool, environ, conf))
        for pool in ("worker-high", "worker-default", "worker-emails")
    ]
    with running_workers(*specs) as (high, default, emails):
        assert emails.celery_process().nice() == 5
        assert emails.pool_size() == 1
        publish_by_name(environ, [f"e{n}" for n in range(10)])
        for n in range(10):
            probe.send(f"h{n}", queue="high")
            probe.send(f"d{n}", queue="default")
        wait_for(lambda: len(probe.records()) == 30, timeout=60, what="all 30 probe tasks to run")
        pids = {
            queue: {child.pid for child in worker.celery_process().children()}
            for queue, worker in (("high", high), ("default", default), ("emails", emails))
        }
        for record in probe.records():
            queue = {"e": "emails", "h": "high", "d": "default"}[record["key"][0]]
            assert record["queue"] == queue, record
            assert record["hostname"].startswith(f"{queue}@"), record
            assert record["pid"] in pids[queue], record
