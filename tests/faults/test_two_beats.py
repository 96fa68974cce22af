"""Fault 7: two beats scheduling at once, outside the election (`celery beat` started by hand on two hosts;
the same as an elected leader that sends on past its lock's expiry), with the nightly purge moved to every
2 seconds. Both come due for the same slots; each slot is claimed once (jobs.ScheduleSlot), so only the
claiming beat sends it and every send reaches worker-default once. And still each policy's nightly slot (its
date) gets one purge run, which finishes: the purge's own unique (policy, slot) stays the last fence."""

from __future__ import annotations

import json
import re
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
# The nightly purge, moved to fire this often: about RUN_SECONDS / FIRE_EVERY slots in all.
FIRE_EVERY = 2


def received(worker_log: str) -> int:
    return len(re.findall(r"Task purge\.tasks\.purge_nightly\[[^\]]+\] received", worker_log))


def start_beat(environ: dict[str, str], name: str) -> tuple[subprocess.Popen, Path]:
    # kiln.conf's beat without `manage.py kiln elect --`, each with its own pidfile: two hosts' beats, which
    # no pidfile and no lock can stop.
    elected = program_command("beat", environ)
    command = [
        f"--pidfile={Path(environ['KILN_RUN_DIR']) / name}.pid" if part.startswith("--pidfile=") else part
        for part in elected[elected.index("--") + 1 :]
    ]
    log_path = Path(environ["KILN_LOG_DIR"]) / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(command, cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT), log_path


def test_two_unelected_beats_send_each_slot_once_and_each_nightly_slot_runs_once(
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
            # Until both have come due and the worker has had at least 6 firings (not a fixed sleep).
            wait_for(
                lambda: (
                    all(FIRED in log.read_text() for _process, log in beats) and received(worker.log()) >= 4
                ),
                timeout=RUN_SECONDS * 3,
                interval=0.5,
                what="both beats to come due for the nightly purge, and worker-default to receive four",
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

        def claims() -> list[dict]:
            out = run_manage(
                environ,
                "shell",
                "-c",
                "import json; from jobs.models import ScheduleSlot; "
                "print(json.dumps(list(ScheduleSlot.objects.filter(name='purge: nightly')"
                ".values('slot', 'task_id')), default=str))",
            )
            return json.loads(out.stdout.strip().splitlines()[-1])

        final = wait_for(
            lambda: (r := runs()) and all(run["state"] == "done" for run in r) and r,
            timeout=120,
            interval=2,
            what=lambda: f"the nightly runs to finish: {runs()}",
        )
        runs_received = received(worker.log())
        claimed = claims()
    logs = [log.read_text() for _process, log in beats]
    due = sum(log.count(FIRED) for log in logs)
    refused = sum(log.count("Scheduler: not sending purge: nightly") for log in logs)
    # The two beats came due for the same slots, and the second to claim one did not send it.
    assert refused >= 1, f"no send refused: {due} due"
    assert due - refused == len(claimed) == runs_received, (due, refused, len(claimed), runs_received)
    assert len({claim["slot"] for claim in claimed}) == len(claimed)
    policies = [run["policy__target"] for run in final]
    assert len(policies) == len(set(policies)), f"a policy ran twice in one slot: {final}"
    assert len({run["slot"] for run in final}) == 1
    assert runs_received >= 4, f"the beats together should have sent at least 4 times, saw {runs_received}"
