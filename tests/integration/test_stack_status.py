"""`make status` (`manage.py kiln ctl status`) on the stack `make run` starts: a stopped program is reported,
and the command still succeeds; only an unreachable supervisord is an error."""

from __future__ import annotations

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
