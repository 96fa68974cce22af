"""Fault 7: two beats started by mistake (say, on two hosts), with the nightly purge moved to
every 2 seconds. Every firing of both beats reaches worker-default, and still each policy's slot (its
date) gets one purge run, which finishes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import (
    REPO,
    RedisServer,
    program_command,
    running_workers,
    stop_process,
    wait_for,
)
from tests.support.stack import migrated_environ, run_manage

pytestmark = pytest.mark.faults

RUN_SECONDS = 20
FIRED = "Scheduler: Sending due task purge: nightly"
# The nightly purge, moved to fire this often: about 2 * RUN_SECONDS / FIRE_EVERY firings in all.
FIRE_EVERY = 2


def start_beat(environ: dict[str, str], name: str) -> tuple[subprocess.Popen, Path]:
    # Each beat with its own pidfile: two hosts' beats, which no pidfile can stop.
    command = [
        f"--pidfile={Path(environ['KILN_RUN_DIR']) / name}.pid" if part.startswith("--pidfile=") else part
        for part in program_command("beat", environ)
    ]
    log_path = Path(environ["KILN_LOG_DIR"]) / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(command, cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT), log_path


def test_two_beats_fire_the_nightly_purge_twice_as_often_and_each_slot_runs_once(
    tmp_path: Path, broker: RedisServer
) -> None:
    environ = migrated_environ(tmp_path / "var", broker.url)
    moved = run_manage(
        environ,
        "shell",
        "-c",
        "from django_celery_beat.models import IntervalSchedule, PeriodicTask; "
        f"every, _ = IntervalSchedule.objects.get_or_create(every={FIRE_EVERY}, period='seconds'); "
        "PeriodicTask.objects.filter(name='purge: nightly').update(crontab=None, interval=every)",
    )
    assert moved.returncode == 0, moved.stderr
    with running_workers(("worker-default", environ)) as (worker,):
        beats = [start_beat(environ, name) for name in ("beat-a", "beat-b")]
        try:
            # Until both have fired and the worker has had at least 6 firings (not a fixed sleep).
            wait_for(
                lambda: (
                    all(FIRED in log.read_text() for _process, log in beats)
                    and worker.log().count("Task purge.tasks.purge_nightly[") >= 6
                ),
                timeout=RUN_SECONDS * 3,
                interval=0.5,
                what="both beats to fire the nightly purge, six times in all",
            )
        finally:
            for process, _log in beats:
                stop_process(process)
        for _process, log in beats:
            assert FIRED in log.read_text(), f"{log.name} never fired"

        def runs() -> list[dict]:
            out = run_manage(
                environ,
                "shell",
                "-c",
                "import json; from purge.models import PurgeRun; "
                "print(json.dumps(list(PurgeRun.objects.values('policy__target', 'slot', 'state')), default=str))",
            )
            return json.loads(out.stdout.strip().splitlines()[-1])

        final = wait_for(
            lambda: (r := runs()) and all(run["state"] == "done" for run in r) and r,
            timeout=120,
            interval=2,
            what=lambda: f"the nightly runs to finish: {runs()}",
        )
        fired = worker.log().count("Task purge.tasks.purge_nightly[")
    policies = [run["policy__target"] for run in final]
    assert len(policies) == len(set(policies)), f"a policy ran twice in one slot: {final}"
    assert len({run["slot"] for run in final}) == 1
    assert fired >= 6, f"both beats together should have fired at least 6 times, saw {fired}"
