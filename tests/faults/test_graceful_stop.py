"""Fault 6: `supervisorctl stop` with jobs in flight, under a real supervisord running kiln.conf's
worker-default program as it ships. TERM reaches the worker's main process only (stopasgroup=false): the
jobs finish, nothing is lost, no WorkerLostError; after `start`, the waiting jobs run. The same program
with stopasgroup=true (what the seeds' Horizon files use) kills the jobs mid-run: kept as a regression
test, so nobody "fixes" kiln.conf back."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from config.celery import app
from tests.faults.ledger import Ledger
from tests.support.broker import Probe
from tests.support.processes import KILN_CONF, RedisServer, stack_environment, stop_process, wait_for

pytestmark = pytest.mark.faults

JOB_SECONDS = 6.0
VENV_BIN = Path(sys.prefix) / "bin"


def supervised_worker_default(
    directory: Path, environ: dict[str, str], **changes: str
) -> tuple[subprocess.Popen, Path]:
    """supervisord running kiln.conf's [program:worker-default] section (with `changes`), nothing else."""
    shipped = configparser.RawConfigParser()
    shipped.read(KILN_CONF)
    program = dict(shipped.items("program:worker-default"))
    program.update(changes)
    program["command"] += " --include=tests.support.probe_tasks"
    program["autostart"] = "true"
    conf = configparser.RawConfigParser()
    conf["supervisord"] = {
        "logfile": str(directory / "supervisord.log"),
        "pidfile": str(directory / "supervisord.pid"),
    }
    conf["unix_http_server"] = {"file": str(directory / "supervisor.sock")}
    conf["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    conf["supervisorctl"] = {"serverurl": f"unix://{directory / 'supervisor.sock'}"}
    conf["program:worker-default"] = program
    path = directory / "supervisord.conf"
    with path.open("w") as handle:
        conf.write(handle)
    process = subprocess.Popen(
        [str(VENV_BIN / "supervisord"), "--nodaemon", "--configuration", str(path)], env=environ
    )
    return process, path


def supervisorctl(conf: Path, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "--configuration", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=700,
    )
    return result.stdout + result.stderr


def stop_with_jobs_in_flight(
    tmp_path: Path, broker: RedisServer, probe: Probe, **changes: str
) -> tuple[Ledger, str]:
    environ = stack_environment(tmp_path / "var", broker.url, KILN_JOB_HISTORY="false")
    ledger = Ledger(broker)
    process, conf = supervised_worker_default(tmp_path, environ, **changes)
    log = Path(environ["KILN_LOG_DIR"]) / "worker-default.log"
    try:
        wait_for(
            lambda: log.exists() and " ready." in log.read_text(),
            timeout=60,
            what="worker-default to be ready",
        )
        for n in range(2):
            app.send_task(
                "probe.effect",
                args=[f"running-{n}", JOB_SECONDS],
                queue="default",
                connection=probe.connection,
                ignore_result=True,
            )
        wait_for(lambda: ledger.runs() == 2, timeout=30, what="both jobs to start")
        app.send_task(
            "probe.effect",
            args=["waiting", 0.1],
            queue="default",
            connection=probe.connection,
            ignore_result=True,
        )
        stopped = supervisorctl(conf, "stop", "worker-default")
        assert "stopped" in stopped, stopped
        after_stop = set(ledger.effect_keys())
        supervisorctl(conf, "start", "worker-default")
        wait_for(
            lambda: "waiting" in ledger.effect_keys(), timeout=60, what="the waiting job to run after start"
        )
    finally:
        stop_process(process, timeout=120)
    return Ledger(broker), log.read_text() + f"\nfinished before start: {sorted(after_stop)}"


def test_supervisorctl_stop_lets_running_jobs_finish_with_kiln_conf_as_shipped(
    tmp_path: Path, broker: RedisServer, probe: Probe
) -> None:
    ledger, log = stop_with_jobs_in_flight(tmp_path, broker, probe)
    assert "finished before start: ['running-0', 'running-1']" in log
    assert ledger.runs_per_key() == {"running-0": 1, "running-1": 1, "waiting": 1}
    assert "WorkerLostError" not in log
    assert "Warm shutdown" in log


def test_stopasgroup_true_kills_the_running_jobs(tmp_path: Path, broker: RedisServer, probe: Probe) -> None:
    _ledger, log = stop_with_jobs_in_flight(tmp_path, broker, probe, stopasgroup="true")
    assert "finished before start: []" in log, (
        "TERM to the whole group should kill the pool processes mid-job"
    )
    assert "WorkerLostError" in log or "exited prematurely" in log
