"""deploy/supervisor/kiln.conf as it ships: its contract, and the whole stack run by supervisord."""

from __future__ import annotations

import configparser
import signal
from collections.abc import Iterator

import pytest
from celery import Celery
from django.conf import settings

from tests.support.processes import KILN_CONF, wait_for
from tests.support.stack import Stack, http_status, running_stack

WORKERS = ("worker-high", "worker-default")
KILN_PROGRAMS = ("web", "worker-high", "worker-default", "beat", "flower")


def kiln_conf() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(KILN_CONF)
    return parser


def test_group_kiln_holds_every_program() -> None:
    conf = kiln_conf()
    assert conf.get("group:kiln", "programs").split(",") == list(KILN_PROGRAMS)
    assert {s.removeprefix("program:") for s in conf.sections() if s.startswith("program:")} == set(
        KILN_PROGRAMS
    )


@pytest.mark.parametrize("program", KILN_PROGRAMS)
def test_every_program_stops_with_term_and_waits_longer_than_any_job(program: str) -> None:
    section = kiln_conf()[f"program:{program}"]
    longest = max(queue.time_limit for queue in settings.KILN_QUEUES)
    assert section["stopsignal"] == "TERM"
    assert int(section["stopwaitsecs"]) > longest
    assert section["autorestart"] == "true"
    # TERM to the main process only (Celery's warm shutdown); a last-resort KILL reaches the children.
    assert section["stopasgroup"] == "false"
    assert section["killasgroup"] == "true"


def test_the_pools_consume_only_their_own_queue() -> None:
    conf = kiln_conf()
    high = conf.get("program:worker-high", "command").split()
    default = conf.get("program:worker-default", "command").split()
    assert "--queues=high" in high
    assert "--autoscale=%(ENV_KILN_HIGH_MAX_PROCESSES)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s" in high
    # The web at 0, thumbnails below it, maintenance lowest: a page gets a core first.
    assert high[:3] == ["nice", "-n", "15"]
    assert default[:3] == ["nice", "-n", "19"]
    assert "--queues=default" in default


def test_beat_stops_first_and_flower_listens_on_loopback() -> None:
    conf = kiln_conf()
    priorities = {p: int(conf.get(f"program:{p}", "priority")) for p in KILN_PROGRAMS}
    assert max(priorities, key=priorities.get) == "beat"
    assert conf.get("program:beat", "numprocs", fallback="1") == "1"
    assert "--address=127.0.0.1" in conf.get("program:flower", "command").split()


def test_beat_runs_under_the_election_on_every_host() -> None:
    """Beat on every web host: `kiln elect` (single-beat's Redis lock) runs it only while its host leads;
    TERM goes to `kiln elect` alone, which passes it to beat (stopasgroup=false)."""
    conf = kiln_conf()
    command = conf.get("program:beat", "command").split()
    assert command[1:5] == ["manage.py", "kiln", "elect", "--"]
    assert command[5:8] == ["%(ENV_KILN_VENV)s/bin/celery", "--app=config", "beat"]
    assert conf.get("program:beat", "stopasgroup") == "false"
    assert conf.get("program:beat", "killasgroup") == "true"
    shipped = KILN_CONF.read_text() + (KILN_CONF.parent.parent / "README.md").read_text()
    assert "exactly one per installation" not in shipped


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A short path: unix socket paths are limited to 107 bytes.
    with running_stack(tmp_path_factory.mktemp("sv") / "var") as stack:
        yield stack


@pytest.mark.processes
def test_the_stack_starts_every_program_serves_and_stops_cleanly(stack: Stack) -> None:
    assert "Admin user 'admin' created with password:" in stack.setup_output
    stack.wait_until_running()
    environ, var_dir, base = stack.environ, stack.var_dir, stack.base_url
    assert http_status(f"{base}/admin/login/") == 200
    assert http_status(f"{base}/static/admin/css/base.css") == 200
    flower = f"http://127.0.0.1:{environ['KILN_FLOWER_PORT']}/flower/"
    wait_for(lambda: http_status(flower) == 200, timeout=30, what="Flower to answer under /flower/")

    # Both pools answer a broadcast on the embedded Redis, over its unix socket.
    # (A client app of its own: Celery's mailbox publishes through the app's default broker pool.)
    client = Celery(broker=f"redis+socket://{var_dir / 'run' / 'redis.sock'}", set_as_current=False)
    wait_for(
        lambda: (
            {node.split("@")[0] for reply in client.control.ping(timeout=1.0) for node in reply}
            >= {"high", "default"}
        ),
        timeout=30,
        what="worker-high and worker-default to answer ping",
    )
    client.close()

    stopped = stack.manage("kiln", "ctl", "stop", "kiln:*")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    states = stack.program_states()
    assert {p: states[p] for p in KILN_PROGRAMS} == dict.fromkeys(KILN_PROGRAMS, "STOPPED")
    assert states["redis"] == "RUNNING", "stopping group kiln must leave the broker up"

    # Ctrl-C: SIGINT to supervisord (`kiln run` exec'd it, so the pid is the same).
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=120) == 0
    supervisord_log = (var_dir / "log" / "supervisord.log").read_text()
    assert "SIGKILL" not in supervisord_log
    assert "stopped: redis (exit status 0)" in supervisord_log
    for program in KILN_PROGRAMS:
        assert f"stopped: {program} (exit status 0)" in supervisord_log, supervisord_log
    for worker in WORKERS:
        assert "WorkerLostError" not in (var_dir / "log" / f"{worker}.log").read_text()
