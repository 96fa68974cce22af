"""`make status` (`manage.py kiln ctl status`) on the stack `make run` starts: a stopped program is reported,
and the command still succeeds; only an unreachable supervisord is an error. And supervisord's start-up
says nothing alarming to a newcomer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import wait_for
from tests.support.stack import Stack

pytestmark = pytest.mark.processes


def test_status_exits_0_and_reports_a_stopped_program(stack: Stack) -> None:
    assert stack.manage("kiln", "ctl", "stop", "kiln:flower").returncode == 0
    try:
        status = stack.manage("kiln", "ctl", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert any(line.split()[:2] == ["kiln:flower", "STOPPED"] for line in status.stdout.splitlines())
        assert any(line.split()[:2] == ["kiln:web", "RUNNING"] for line in status.stdout.splitlines())
    finally:
        stack.manage("kiln", "ctl", "start", "kiln:flower")
        wait_for(lambda: stack.program_states().get("flower") == "RUNNING", timeout=30, what="flower again")


def test_supervisord_starts_without_a_critical_line_and_its_socket_wants_the_password(stack: Stack) -> None:
    log = (stack.var_dir / "log" / "supervisord.log").read_text()
    assert "CRIT" not in log, [line for line in log.splitlines() if "CRIT" in line]
    secret = stack.var_dir / "run" / "supervisor.secret"
    assert secret.stat().st_mode & 0o077 == 0
    # Without the password, the socket answers nothing.
    conf = stack.var_dir / "bare-supervisorctl.conf"
    conf.write_text(f"[supervisorctl]\nserverurl=unix://{stack.var_dir / 'run' / 'supervisor.sock'}\n")
    bare = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "supervisorctl"), "--configuration", str(conf), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "kiln:web" not in bare.stdout
    assert "Server requires authentication" in bare.stdout + bare.stderr
