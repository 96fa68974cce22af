"""Purges on a real worker-default (kiln.conf's command) with a private Redis and a SQLite database."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.processes import RedisServer, Worker, running_workers, stack_environment, wait_for
from tests.support.stack import run_manage

pytestmark = pytest.mark.processes


@pytest.fixture
def environ(tmp_path: Path, broker: RedisServer) -> dict[str, str]:
    environ = stack_environment(tmp_path / "var", broker.url)
    result = run_manage(environ, "migrate", "--verbosity=0")
    assert result.returncode == 0, result.stderr
    return environ


@pytest.fixture
def worker(environ: dict[str, str]) -> Iterator[Worker]:
    with running_workers(("worker-default", environ)) as (worker,):
        yield worker


# About 20 s of purging at 10 ms a row: the test must still find the run going after each `manage.py shell`
# it starts to look (1-3 s apiece on a busy machine), after the nice-10 worker picked the job up.
LONG_RUN_ROWS = 2000


@pytest.fixture
def slow_environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # 10 ms per deleted row while the gate file exists (tests/support/probe_tasks.py): a 10-row batch takes
    # 0.1 s, so a run of LONG_RUN_ROWS lasts long enough on any machine to race a second run or to kill it
    # mid-run; removing the gate lets the rest go at full speed once the test has seen the race.
    gate = tmp_path / "purge-slow"
    gate.touch()
    return {**environ, "KILN_TEST_PURGE_ROW_DELAY": "0.01", "KILN_TEST_PURGE_GATE": str(gate)}


@pytest.fixture
def slow_worker(slow_environ: dict[str, str]) -> Iterator[Worker]:
    with running_workers(("worker-default", slow_environ)) as (worker,):
        yield worker


def django(environ: dict[str, str], code: str) -> str:
    result = run_manage(environ, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def seed_history(environ: dict[str, str], *, old: int, young: int, batch_size: int) -> None:
    django(
        environ,
        "from datetime import timedelta; from django.utils import timezone; "
        "from reports.models import Report, ReportHistoryRecord as H; from purge.models import RetentionPolicy; "
        "r = Report.objects.create(name='seed'); now = timezone.now(); "
        f"H.objects.bulk_create([H(report=r, rendered_at=now - timedelta(days=200)) for _ in range({old})], batch_size=5000); "
        f"H.objects.bulk_create([H(report=r, rendered_at=now - timedelta(days=1)) for _ in range({young})]); "
        f"RetentionPolicy.objects.filter(target='report_history').update(batch_size={batch_size})",
    )


def runs(environ: dict[str, str]) -> list[dict]:
    code = (
        "import json; from purge.models import PurgeRun; "
        "print(json.dumps(list(PurgeRun.objects.order_by('pk').values("
        "'pk', 'state', 'dry_run', 'examined', 'removed', 'batches', 'tasks', 'error', 'started_at', 'finished_at')), default=str))"
    )
    return json.loads(django(environ, code))


def history_count(environ: dict[str, str]) -> int:
    return int(
        django(environ, "from reports.models import ReportHistoryRecord as H; print(H.objects.count())")
    )


def test_a_dry_run_then_a_real_run_from_the_shell_on_worker_default(environ, worker: Worker) -> None:
    seed_history(environ, old=1200, young=7, batch_size=100)
    dry = run_manage(
        environ, "purge", "run", "--policy", "report_history", "--dry-run", "--wait", "--timeout", "60"
    )
    assert dry.returncode == 0, dry.stderr
    assert "done, would remove 1200 of 1200 examined in 12 batch(es)" in dry.stdout
    assert history_count(environ) == 1207

    real = run_manage(
        environ, "purge", "run", "--policy", "Report history records", "--wait", "--timeout", "60"
    )
    assert real.returncode == 0, real.stderr
    assert "done, removed 1200 of 1200 examined in 12 batch(es)" in real.stdout
    assert history_count(environ) == 7
    assert "Task purge.tasks.purge_run[" in worker.log()


REQUEST_RUN = (
    "from purge import services; from purge.models import RetentionPolicy; "
    "services.purge_run_request(policy=RetentionPolicy.objects.get(target='report_history'), "
    "dry_run=False, trigger='command')"
)


def test_a_second_run_of_the_same_policy_is_refused_while_the_first_runs(
    slow_environ, slow_worker: Worker
) -> None:
    environ = slow_environ
    seed_history(environ, old=LONG_RUN_ROWS, young=0, batch_size=10)
    django(environ, REQUEST_RUN)
    wait_for(
        lambda: (r := runs(environ)) and r[0]["state"] == "running" and r[0]["batches"] > 0,
        timeout=60,
        interval=0.2,
        what="the first run to be under way",
    )
    django(environ, REQUEST_RUN)
    wait_for(
        lambda: any(r["state"] == "skipped" for r in runs(environ)),
        timeout=60,
        interval=0.3,
        what="a refusal",
    )
    assert runs(environ)[0]["state"] == "running"  # the refusal came while the first run was going
    Path(environ["KILN_TEST_PURGE_GATE"]).unlink()
    wait_for(
        lambda: all(r["state"] in ("done", "skipped") for r in runs(environ)),
        timeout=120,
        interval=0.5,
        what="both runs to end",
    )
    states = sorted(r["state"] for r in runs(environ))
    assert states == ["done", "skipped"]
    skipped = next(r for r in runs(environ) if r["state"] == "skipped")
    done = next(r for r in runs(environ) if r["state"] == "done")
    assert f"run #{done['pk']} of this policy was still running" in skipped["error"]
    assert done["removed"] == LONG_RUN_ROWS


def test_a_purge_killed_mid_run_finishes_exactly_once_when_delivered_again(
    slow_environ, slow_worker: Worker
) -> None:
    environ, worker = slow_environ, slow_worker
    seed_history(environ, old=LONG_RUN_ROWS, young=11, batch_size=10)
    django(environ, REQUEST_RUN)
    wait_for(
        lambda: (r := runs(environ)) and r[0]["batches"] >= 5, timeout=60, interval=0.2, what="a few batches"
    )

    main = worker.celery_process()
    children = main.children()
    for process in [*children, main]:  # SIGKILL: no warm shutdown, no acknowledgement
        process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)
    psutil.wait_procs(children, timeout=10)
    interrupted = runs(environ)[0]
    assert interrupted["state"] == "running"
    assert 0 < interrupted["removed"] < LONG_RUN_ROWS

    # Redis hands the unacknowledged message out again after the visibility timeout (an hour by default);
    # here the same message is published again, which is what that redelivery is. The rest of the run
    # goes at full speed: the race it had to lose is over.
    Path(environ["KILN_TEST_PURGE_GATE"]).unlink()
    with running_workers(("worker-default", environ)):
        run_id = interrupted["pk"]
        django(environ, f"from purge.tasks import purge_run_task; purge_run_task.delay({run_id})")
        wait_for(
            lambda: runs(environ)[0]["state"] == "done", timeout=120, interval=0.5, what="the run to finish"
        )
    finished = runs(environ)[0]
    assert finished["removed"] == LONG_RUN_ROWS
    assert finished["tasks"] >= 2
    assert history_count(environ) == 11
