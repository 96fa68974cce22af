"""blueprint/checks/programs.py: the shipped process files pass; each broken copy gives exactly its finding."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.blueprint.conftest import SHIPPED, edit, edit_section, findings


def test_the_shipped_files_have_no_findings(settings) -> None:
    assert findings(SHIPPED, settings) == []


def test_it_reports_a_stopwaitsecs_not_above_the_longest_time_limit(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-default", "stopwaitsecs=600", "stopwaitsecs=300"
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-default] stopwaitsecs: 300 (300 s) is not above the longest "
        "hard time limit (300 s): a job still allowed to run would be killed on stop"
    ]


def test_it_reports_a_missing_stopwaitsecs_as_supervisors_ten_seconds(deploy: Path, settings) -> None:
    edit_section(deploy / "supervisor" / "kiln.conf", "program:beat", "stopwaitsecs=600\n", "")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:beat] stopwaitsecs: unset, default (10 s) is not above the longest "
        "hard time limit (300 s): a job still allowed to run would be killed on stop"
    ]


def test_it_reports_a_timeoutstopsec_not_above_the_longest_time_limit(deploy: Path, settings) -> None:
    edit(deploy / "systemd" / "kiln-worker-high.service", "TimeoutStopSec=600", "TimeoutStopSec=5min")
    assert findings(deploy, settings) == [
        "systemd/kiln-worker-high.service: kiln-worker-high.service TimeoutStopSec: 5min (300 s) is not above "
        "the longest hard time limit (300 s): a job still allowed to run would be killed on stop"
    ]


def test_it_reports_stopasgroup_on_a_worker(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-high", "stopasgroup=false", "stopasgroup=true"
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-high] stopasgroup: true on a worker: TERM reaches the pool "
        "children, which die mid-job (WorkerLostError); use stopasgroup=false and killasgroup=true"
    ]


@pytest.mark.parametrize("replacement", ["KillMode=control-group", ""])
def test_it_reports_killmode_control_group_on_a_worker_unit(deploy: Path, settings, replacement: str) -> None:
    edit(deploy / "systemd" / "kiln-worker-default.service", "KillMode=mixed", replacement)
    assert findings(deploy, settings) == [
        "systemd/kiln-worker-default.service: kiln-worker-default.service KillMode: control-group on a worker: "
        "use mixed (TERM to Celery's main process only; control-group sends TERM to the pool children, "
        "which die mid-job, WorkerLostError)"
    ]


def test_it_reports_more_than_one_beat_under_supervisord(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:beat", "priority=900", "priority=900\nnumprocs=2"
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: beat: 2 beat processes ([program:beat]): one per host; the election picks one "
        "across hosts"
    ]


def test_a_worker_with_an_embedded_beat_is_never_elected(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-high", "--loglevel=INFO", "--loglevel=INFO -B"
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-high] command: a worker with an embedded beat (-B) is never "
        "elected: it schedules on every host beside the elected beat; run beat as its own program under "
        "`manage.py kiln elect`",
        "supervisor/kiln.conf: beat: 2 beat processes ([program:beat], [program:worker-high]): one per host; "
        "the election picks one across hosts",
    ]


def test_it_reports_a_beat_not_under_the_election(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf",
        "program:beat",
        "command=%(ENV_KILN_VENV)s/bin/python manage.py kiln elect --\n",
        "command=",
    )
    edit(
        deploy / "systemd" / "kiln-beat.service",
        "ExecStart=/srv/kiln/venv/bin/python manage.py kiln elect -- \\\n    ",
        "ExecStart=",
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:beat] command: beat not under `manage.py kiln elect -- celery ... "
        "beat`: it schedules whether or not its host holds the beat lock, beside the elected one",
        "systemd/kiln-beat.service: kiln-beat.service ExecStart: beat not under `manage.py kiln elect -- "
        "celery ... beat`: it schedules whether or not its host holds the beat lock, beside the elected one",
    ]


def test_it_reports_stopasgroup_on_beat(deploy: Path, settings) -> None:
    edit_section(deploy / "supervisor" / "kiln.conf", "program:beat", "stopasgroup=false", "stopasgroup=true")
    edit(deploy / "systemd" / "kiln-beat.service", "KillMode=mixed", "KillMode=control-group")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:beat] stopasgroup: true on beat: TERM reaches beat beside `kiln "
        "elect`, which passes it on too; use stopasgroup=false and killasgroup=true",
        "systemd/kiln-beat.service: kiln-beat.service KillMode: control-group on beat: use mixed (TERM to "
        "`kiln elect` only, which passes it to beat; control-group sends beat a second TERM)",
    ]


def test_it_reports_a_second_beat_unit(deploy: Path, settings) -> None:
    shutil.copy(deploy / "systemd" / "kiln-beat.service", deploy / "systemd" / "kiln-beat-2.service")
    assert findings(deploy, settings) == [
        "systemd/kiln-beat-2.service, systemd/kiln-beat.service: beat: 2 beat processes "
        "(kiln-beat-2.service, kiln-beat.service): one per host; the election picks one across hosts"
    ]


def test_it_reports_a_pool_whose_nice_level_is_not_the_declared_one(deploy: Path, settings) -> None:
    edit(
        deploy / "supervisor" / "kiln.conf",
        "command=nice -n 19 %(ENV_KILN_VENV)s",
        "command=%(ENV_KILN_VENV)s",
    )
    edit(deploy / "systemd" / "kiln-worker-default.service", "Nice=19\n", "")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-default] command: the default pool runs at nice 0, KILN_QUEUES "
        "declares 19 (nice -n 19 before the command): the pools' CPU priorities keep the queues' order",
        "systemd/kiln-worker-default.service: kiln-worker-default.service Nice: the default pool runs at nice "
        "0, KILN_QUEUES declares 19 (Nice=19): the pools' CPU priorities keep the queues' order",
    ]


def test_the_nice_level_and_the_units_cpu_weight_follow_the_declaration(deploy: Path, settings) -> None:
    settings.KILN_QUEUES = tuple(
        dataclasses.replace(queue, nice=5) if queue.name == "high" else queue
        for queue in settings.KILN_QUEUES
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-high] command: the high pool runs at nice 15, KILN_QUEUES "
        "declares 5 (nice -n 5 before the command): the pools' CPU priorities keep the queues' order",
        "systemd/kiln-worker-high.service: kiln-worker-high.service Nice: the high pool runs at nice 15, "
        "KILN_QUEUES declares 5 (Nice=5): the pools' CPU priorities keep the queues' order",
        "systemd/kiln-worker-high.service: kiln-worker-high.service CPUWeight: 4: the high pool runs at nice "
        "5, whose share between units is CPUWeight=33; Nice= alone orders processes only inside the unit",
    ]
    edit(deploy / "supervisor" / "kiln.conf", "command=nice -n 15 ", "command=nice -n 5 ")
    edit(deploy / "systemd" / "kiln-worker-high.service", "Nice=15\n", "Nice=5\n")
    edit(deploy / "systemd" / "kiln-worker-high.service", "CPUWeight=4\n", "CPUWeight=33\n")
    assert findings(deploy, settings) == []


def test_it_reports_a_pool_unit_without_its_cpu_weight(deploy: Path, settings) -> None:
    """Without CPUWeight= the unit's cgroup weighs 100, the web's: Nice= then orders the pool's processes
    among themselves only, and a saturated pool takes half the CPU from the pages."""
    edit(deploy / "systemd" / "kiln-worker-default.service", "CPUWeight=1\n", "")
    assert findings(deploy, settings) == [
        "systemd/kiln-worker-default.service: kiln-worker-default.service CPUWeight: unset (100, the web's): "
        "the default pool runs at nice 19, whose share between units is CPUWeight=1; Nice= alone orders "
        "processes only inside the unit",
    ]


@pytest.mark.parametrize(
    ("program", "old", "new", "consumed"),
    [
        ("program:worker-default", "--queues=default", "--queues=default,high", "default,high"),
        ("program:worker-high", "--queues=high", "--queues=high,default", "default,high"),
        ("program:worker-high", "--queues=high\n", "\n", "default,high"),
    ],
    ids=["default-consumes-high", "high-consumes-default", "no-queues-consumes-all"],
)
def test_it_reports_a_pool_consuming_another_pools_queue(
    deploy: Path, settings, program: str, old: str, new: str, consumed: str
) -> None:
    edit_section(deploy / "supervisor" / "kiln.conf", program, old, new)
    assert findings(deploy, settings) == [
        f"supervisor/kiln.conf: [{program}] command: the worker consumes several queues ({consumed}): one "
        "queue's jobs could take a process another queue needs; give each pool --queues of its own"
    ]


def test_it_reports_a_pool_of_a_queue_nobody_declared(deploy: Path, settings) -> None:
    edit_section(deploy / "supervisor" / "kiln.conf", "program:worker-high", "--queues=high", "--queues=hihg")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-high] command: consumes hihg, which KILN_QUEUES does not declare",
        "supervisor/: queue high: declared in KILN_QUEUES but no worker program consumes it: its jobs would "
        "wait for ever (add worker-high with --queues=high; README: Add your own queue)",
    ]


def test_it_reports_a_declared_queue_without_a_pool_in_each_set_of_files(deploy: Path, settings) -> None:
    emails = dataclasses.replace(
        settings.KILN_QUEUES[1], name="emails", routes=("mail.*",), concurrency=1, nice=5
    )
    settings.KILN_QUEUES = (*settings.KILN_QUEUES, emails)
    message = (
        "queue emails: declared in KILN_QUEUES but no worker program consumes it: its jobs would wait for "
        "ever (add worker-emails with --queues=emails; README: Add your own queue)"
    )
    assert findings(deploy, settings) == [f"supervisor/: {message}", f"systemd/: {message}"]


def high_between(settings, minimum: int, maximum: int) -> None:
    settings.KILN_QUEUES = tuple(
        dataclasses.replace(queue, autoscale=(minimum, maximum)) if queue.name == "high" else queue
        for queue in settings.KILN_QUEUES
    )


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        (
            "--autoscale=%(ENV_KILN_HIGH_MAX_PROCESSES)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s",
            "--autoscale=8,2",
            "--autoscale is 8,2: the high pool autoscales between 2 and 10 "
            "(--autoscale=${KILN_HIGH_MAX_PROCESSES},${KILN_HIGH_MIN_PROCESSES})",
        ),
        (
            "--autoscale=%(ENV_KILN_HIGH_MAX_PROCESSES)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s",
            "--concurrency=10",
            "--autoscale is unset: the high pool autoscales between 2 and 10 "
            "(--autoscale=${KILN_HIGH_MAX_PROCESSES},${KILN_HIGH_MIN_PROCESSES})",
        ),
        (
            "--autoscale=%(ENV_KILN_HIGH_MAX_PROCESSES)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s",
            "--autoscale=%(ENV_KILN_DEFAULT_CONCURRENCY)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s",
            "--autoscale is %(ENV_KILN_DEFAULT_CONCURRENCY)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s: the high pool "
            "autoscales between 2 and 10 (--autoscale=${KILN_HIGH_MAX_PROCESSES},${KILN_HIGH_MIN_PROCESSES})",
        ),
        ("--hostname=high@%%h", "--hostname=thumbs@%%h", None),
    ],
    ids=["literal-off-declaration", "fixed-instead-of-autoscale", "another-pools-variable", "hostname"],
)
def test_it_reports_a_pool_sized_or_named_off_its_declaration(
    deploy: Path, settings, old: str, new: str, finding: str | None
) -> None:
    high_between(settings, 2, 10)  # the ceiling follows the cores: these messages name 10
    edit_section(deploy / "supervisor" / "kiln.conf", "program:worker-high", old, new)
    finding = finding or (
        "--hostname is thumbs@%%h: name the worker high@%h (the dashboard, `jobs scale` and the Prometheus "
        "pool rules find a pool's workers by that name)"
    )
    assert findings(deploy, settings) == [f"supervisor/kiln.conf: [program:worker-high] command: {finding}"]


def test_a_pool_sized_with_the_declared_numbers_written_out_passes(deploy: Path, settings) -> None:
    high_between(settings, 2, 10)
    edit(
        deploy / "supervisor" / "kiln.conf",
        "--autoscale=%(ENV_KILN_HIGH_MAX_PROCESSES)s,%(ENV_KILN_HIGH_MIN_PROCESSES)s",
        "--autoscale=10,2",
    )
    edit(
        deploy / "systemd" / "kiln-worker-default.service",
        "--concurrency=${KILN_DEFAULT_CONCURRENCY}",
        "--concurrency=2",
    )
    assert findings(deploy, settings) == []


def test_it_reports_flower_off_loopback(deploy: Path, settings) -> None:
    edit(deploy / "systemd" / "kiln-flower.service", "--address=127.0.0.1", "--address=0.0.0.0")
    assert findings(deploy, settings) == [
        "systemd/kiln-flower.service: kiln-flower.service ExecStart: Flower listens on 0.0.0.0: bind it to "
        "127.0.0.1 (--address=127.0.0.1); nginx is its only door"
    ]


def test_it_reports_flower_without_an_address_as_listening_everywhere(deploy: Path, settings) -> None:
    edit(deploy / "supervisor" / "kiln.conf", "    --address=127.0.0.1\n", "")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:flower] command: Flower listens on every address: bind it to "
        "127.0.0.1 (--address=127.0.0.1); nginx is its only door"
    ]


def test_it_reports_an_unauthenticated_flower_api_off_loopback(deploy: Path, settings) -> None:
    conf = deploy / "supervisor" / "kiln.conf"
    edit(conf, "--address=127.0.0.1", "--address=10.0.0.5")
    edit_section(
        conf, "program:flower", "priority=200", 'priority=200\nenvironment=FLOWER_UNAUTHENTICATED_API="true"'
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:flower] command: Flower listens on 10.0.0.5: bind it to 127.0.0.1 "
        "(--address=127.0.0.1); nginx is its only door",
        "supervisor/kiln.conf: [program:flower] FLOWER_UNAUTHENTICATED_API: Flower's API is open to anyone "
        "who reaches its port, and the port is not on loopback",
    ]


def test_an_unauthenticated_flower_api_on_loopback_is_the_designed_setup(deploy: Path, settings) -> None:
    edit(
        deploy / "systemd" / "kiln-flower.service",
        "EnvironmentFile=/etc/kiln/kiln.env",
        "EnvironmentFile=/etc/kiln/kiln.env\nEnvironment=FLOWER_UNAUTHENTICATED_API=true",
    )
    assert findings(deploy, settings) == []
