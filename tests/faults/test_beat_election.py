"""Fault 9: beat on two hosts under the election (`manage.py kiln elect`, single-beat's Redis lock), against
one Redis and one database, with a 4 s lock. One beat sends at a time; SIGKILLed, the leader takes its beat
down with it (parent-death signal) and the other host's beat takes over within the lock time; each slot of
a fast entry was sent once and run once (the slot claims, jobs.ScheduleSlot, against the job history)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
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

LOCK_SECONDS = 4
HEARTBEAT_SECONDS = 1
ENTRY = "probe: every 2 seconds"
SENT = f"Scheduler: Sending due task {ENTRY}"
CREATE = (
    "from django_celery_beat.models import IntervalSchedule, PeriodicTask; "
    "every, _ = IntervalSchedule.objects.get_or_create(every=2, period='seconds'); "
    f"PeriodicTask.objects.create(name={ENTRY!r}, task='celery.accumulate', args='[9]', interval=every)"
)
RUNS = (
    "import json; from jobs.models import Job, ScheduleSlot; "
    f"claims = list(ScheduleSlot.objects.filter(name={ENTRY!r}).values('slot', 'task_id', 'claimed_by')); "
    "jobs = list(Job.objects.filter(task_name='celery.accumulate').values('task_id', 'state')); "
    "print(json.dumps({'claims': claims, 'jobs': jobs}, default=str))"
)


class Host:
    def __init__(self, environ: dict[str, str], name: str) -> None:
        self.name = name
        self.log_path = Path(environ["KILN_LOG_DIR"]) / f"beat-{name}.log"
        # Each host with its own pidfile and name, as two machines would have.
        command = [
            f"--pidfile={Path(environ['KILN_RUN_DIR']) / name}.pid" if part.startswith("--pidfile=") else part
            for part in program_command("beat", environ)
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            command, cwd=REPO, env={**environ, "KILN_BEAT_HOST": name}, stdout=log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sends(self) -> int:
        return self.log().count(SENT)


def test_one_elected_beat_sends_another_takes_over_when_it_is_killed_and_no_slot_runs_twice(
    tmp_path: Path, broker: RedisServer
) -> None:
    environ = migrated_environ(
        tmp_path / "var",
        broker.url,
        KILN_BEAT_LOCK_SECONDS=str(LOCK_SECONDS),
        KILN_BEAT_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
    )
    created = run_manage(environ, "shell", "-c", CREATE)
    assert created.returncode == 0, created.stderr
    lock = broker.client()

    def leader_name() -> str:
        value = lock.get("SINGLE_BEAT_kiln-beat") or ""
        return value.split(":")[1] if value.count(":") >= 2 else ""

    with running_workers(("worker-default", environ)):
        hosts = {name: Host(environ, name) for name in ("host-a", "host-b")}
        try:
            first = wait_for(
                lambda: next((h for h in hosts.values() if h.sends() >= 3), None),
                timeout=60,
                interval=0.5,
                what=lambda: (
                    "one beat to send three times: "
                    + "; ".join(f"{h.name}: {h.log()[-800:]}" for h in hosts.values())
                ),
            )
            second = next(h for h in hosts.values() if h is not first)
            assert leader_name() == first.name
            assert second.sends() == 0, "two elected beats sent at once"
            assert "Scheduler: Sending" not in second.log()

            beat = psutil.Process(first.process.pid).children(recursive=True)
            assert any("beat" in child.cmdline() for child in beat), [c.cmdline() for c in beat]
            killed_at = time.monotonic()
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
            # The killed leader's beat gets TERM from the kernel (parent-death signal) and stops: no beat
            # left scheduling without the lock.
            wait_for(
                lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in beat),
                timeout=20,
                what="the killed leader's beat to stop",
            )
            sent_by_first = first.sends()

            wait_for(
                lambda: leader_name() == second.name,
                timeout=2 * LOCK_SECONDS + 10,
                interval=0.2,
                what=lambda: f"host-b to take the lock: {lock.get('SINGLE_BEAT_kiln-beat')}",
            )
            took_lock = time.monotonic() - killed_at
            # The lock expires LOCK_SECONDS after the last renewal; the follower tries every heartbeat.
            assert took_lock <= LOCK_SECONDS + 2 * HEARTBEAT_SECONDS + 1, took_lock
            wait_for(
                lambda: second.sends() >= 3,
                timeout=60,
                interval=0.5,
                what=lambda: f"{second.name}'s beat to send three times: {second.log()[-2000:]}",
            )
            assert first.sends() == sent_by_first
        finally:
            for host in hosts.values():
                stop_process(host.process)
        # TERM reached the follower's beat through `kiln elect`, which waited for beat's own stop, then gave
        # the lock up: a restarted beat, or another host's, takes over at once.
        assert second.process.returncode == 0, second.log()[-2000:]
        assert lock.get("SINGLE_BEAT_kiln-beat") is None

        def runs() -> dict:
            out = run_manage(environ, "shell", "-c", RUNS)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout.strip().splitlines()[-1])

        final = wait_for(
            lambda: (r := runs()) and all(job["state"] == "succeeded" for job in r["jobs"]) and r,
            timeout=60,
            interval=1,
            what=lambda: f"every sent probe to run: {runs()}",
        )
    claims, jobs = final["claims"], final["jobs"]
    sent = first.sends() + second.sends()
    # Every slot claimed once (the unique constraint), by the beat that sent it, and its one job ran once.
    assert len(claims) == len({claim["slot"] for claim in claims}) >= 6
    assert {claim["claimed_by"].split(":")[0] for claim in claims} == {first.name, second.name}, claims
    assert sorted(claim["task_id"] for claim in claims) == sorted(job["task_id"] for job in jobs), final
    # Beat logs "Sending" before the claim; a refused claim says so: the sends that went out are the claims.
    refused = first.log().count("was claimed by another beat") + second.log().count(
        "was claimed by another beat"
    )
    print(f"sent {sent}, refused {refused}, claims {len(claims)}, lock taken after {took_lock:.1f} s")
    assert sent - refused == len(claims), (sent, refused, claims)
