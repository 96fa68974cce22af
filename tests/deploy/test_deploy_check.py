"""`manage.py kiln check`: the shipped deploy/ passes; each broken copy gives exactly its finding."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs import deploy_check
from tests.support.processes import REPO

SHIPPED = REPO / "deploy"
GOOD_SECRET = "kiln-deploy-check-test-secret-0123456789-abcdefghijklmnop"


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(SHIPPED, copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new))


def edit_section(path: Path, section: str, old: str, new: str) -> None:
    """Replace `old` only inside one [section] of an ini-style file."""
    text = path.read_text()
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end == -1 else end
    body = text[start:end]
    assert old in body, f"{old!r} is not in [{section}] of {path}"
    path.write_text(text[:start] + body.replace(old, new) + text[end:])


def findings(deploy: Path, settings) -> list[str]:
    return [str(finding) for finding in deploy_check.check_deploy_dir(deploy, settings)]


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
        "supervisor/kiln.conf: beat: 2 beat processes ([program:beat]): exactly one per installation, "
        "or jobs are scheduled twice"
    ]


def test_a_worker_with_an_embedded_beat_counts_as_a_second_beat(deploy: Path, settings) -> None:
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-high", "--loglevel=INFO", "--loglevel=INFO -B"
    )
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: beat: 2 beat processes ([program:beat], [program:worker-high]): exactly one "
        "per installation, or jobs are scheduled twice"
    ]


def test_it_reports_a_second_beat_unit(deploy: Path, settings) -> None:
    shutil.copy(deploy / "systemd" / "kiln-beat.service", deploy / "systemd" / "kiln-beat-2.service")
    assert findings(deploy, settings) == [
        "systemd/kiln-beat-2.service, systemd/kiln-beat.service: beat: 2 beat processes "
        "(kiln-beat-2.service, kiln-beat.service): exactly one per installation, or jobs are scheduled twice"
    ]


def test_it_reports_a_default_pool_that_is_not_niced(deploy: Path, settings) -> None:
    edit(
        deploy / "supervisor" / "kiln.conf",
        "command=nice -n 10 %(ENV_KILN_VENV)s",
        "command=%(ENV_KILN_VENV)s",
    )
    edit(deploy / "systemd" / "kiln-worker-default.service", "Nice=10\n", "")
    assert findings(deploy, settings) == [
        "supervisor/kiln.conf: [program:worker-default] command: the default pool is not niced: purges compete "
        "with thumbnails and the web for the CPU (start the command with nice -n 10)",
        "systemd/kiln-worker-default.service: kiln-worker-default.service Nice: the default pool is not niced: "
        "purges compete with thumbnails and the web for the CPU (set Nice=10)",
    ]


@pytest.mark.parametrize(
    ("program", "old", "new"),
    [
        ("program:worker-default", "--queues=default", "--queues=default,high"),
        ("program:worker-high", "--queues=high", "--queues=high,default"),
        ("program:worker-high", "--queues=high\n", "\n"),
    ],
    ids=["default-consumes-high", "high-consumes-default", "no-queues-consumes-all"],
)
def test_it_reports_a_pool_consuming_the_other_pools_queue(
    deploy: Path, settings, program: str, old: str, new: str
) -> None:
    edit_section(deploy / "supervisor" / "kiln.conf", program, old, new)
    assert findings(deploy, settings) == [
        f"supervisor/kiln.conf: [{program}] command: the worker consumes both high and default "
        "(default,high): a purge could take a process a thumbnail needs; give each pool --queues of its own"
    ]


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


def test_it_reports_an_nginx_upload_limit_that_disagrees_with_kiln(deploy: Path, settings) -> None:
    settings.KILN_UPLOAD_MAX_MB = 40
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location = /api/images/ client_max_body_size: 25m for /api/images/, but "
        "KILN_UPLOAD_MAX_MB is 40: set client_max_body_size 40m there",
        "nginx/kiln.conf: location ~ ^/reports/[0-9]+/upload/$ client_max_body_size: 25m for "
        "/reports/1/upload/, but KILN_UPLOAD_MAX_MB is 40: set client_max_body_size 40m there",
    ]


def test_it_reports_an_upload_location_left_at_the_small_default(deploy: Path, settings) -> None:
    edit(
        deploy / "nginx" / "kiln.conf",
        "    location = /api/images/ {\n        client_max_body_size 25m;\n",
        "    location = /api/images/ {\n",
    )
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location = /api/images/ client_max_body_size: 1m for /api/images/, but "
        "KILN_UPLOAD_MAX_MB is 25: set client_max_body_size 25m there"
    ]


def test_it_reports_nginx_serving_originals(deploy: Path, settings) -> None:
    edit(deploy / "nginx" / "kiln.conf", "    location /media/ {\n        return 404;\n    }\n", "")
    edit(deploy / "nginx" / "kiln.conf", "location /media/renditions/ {", "location /media/ {")
    edit(
        deploy / "nginx" / "kiln.conf",
        "alias /var/lib/kiln/media/renditions/;",
        "alias /var/lib/kiln/media/;",
    )
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location /media/: /media/originals/ is not refused: originals keep their GPS "
        "metadata; serve only /media/renditions/"
    ]


def test_the_tls_variant_uncommented_has_no_findings_either(deploy: Path, settings) -> None:
    conf = deploy / "nginx" / "kiln.conf"
    lines = conf.read_text().splitlines(keepends=True)
    start = lines.index("#server {\n")
    end = lines.index("#}\n", start)
    for index in range(start, end + 1):
        lines[index] = lines[index][1:]
    tls = ("#listen 443", "#listen [::]:443", "#ssl_certificate", "#add_header Strict", "#proxy_hide_header")
    lines = [line.replace("#", "", 1) if line.lstrip().startswith(tls) else line for line in lines]
    conf.write_text("".join(lines))
    servers = [
        block for block in deploy_check.parse_nginx(conf.read_text()).children if block.name == "server"
    ]
    assert len(servers) == 2
    assert servers[1].get("ssl_certificate_key") == ["/etc/letsencrypt/live/kiln.example.com/privkey.pem"]
    assert findings(deploy, settings) == []


# --- settings ---------------------------------------------------------------------------------------------


def settings_findings(settings) -> list[str]:
    return [str(finding) for finding in deploy_check.check_settings(settings)]


def test_production_settings_have_no_findings(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    assert settings_findings(settings) == []


def test_it_reports_debug_on(settings) -> None:
    settings.DEBUG = True
    settings.SECRET_KEY = GOOD_SECRET
    assert settings_findings(settings) == ["settings: DEBUG: on: set DEBUG=false in production"]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "missing"),
        ("change-me-to-50-random-characters", "a published value: generate a new one"),
        ("django-insecure-kiln-development-only", "a published value: generate a new one"),
        ("short-but-random-9f8e7d", "fewer than 50 characters or 5 distinct ones"),
        ("ab" * 30, "fewer than 50 characters or 5 distinct ones"),
    ],
)
def test_it_reports_a_missing_or_insecure_secret_key(settings, secret: str, message: str) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = secret
    assert settings_findings(settings) == [f"settings: SECRET_KEY: {message}"]


def test_it_reports_a_visibility_timeout_not_above_every_time_limit(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 300,
    }
    settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
    assert settings_findings(settings) == [
        "settings: CELERY_BROKER_TRANSPORT_OPTIONS visibility_timeout: 300 s is not above the longest time "
        "limit (300 s): a running job would be handed to a second worker (KILN_VISIBILITY_TIMEOUT)"
    ]


def test_it_reports_broker_and_result_backend_visibility_timeouts_that_differ(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {}
    broker = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": 7200,
    }
    assert broker == 3600
    assert settings_findings(settings) == [
        "settings: CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS visibility_timeout: 3600 s differs from the "
        "broker's 7200 s: give both KILN_VISIBILITY_TIMEOUT"
    ]


# --- Django's check --deploy, and the command ---------------------------------------------------------


def test_django_warnings_are_findings_at_fail_level_warning_and_notes_at_error() -> None:
    messages = [
        checks.Warning("cookies travel in clear", id="security.W012"),
        checks.Error("broken", id="kiln.E001"),
        checks.Warning("no preload", id="security.W021"),
    ]
    found, notes = deploy_check.django_findings(messages, checks.WARNING)
    assert [str(f) for f in found] == [
        "django check --deploy: security.W012: cookies travel in clear",
        "django check --deploy: kiln.E001: broken",
    ]
    assert notes == ["note: django check --deploy: security.W021: no preload"]
    found, notes = deploy_check.django_findings(messages, checks.ERROR)
    assert [f.setting for f in found] == ["kiln.E001"]
    assert len(notes) == 2


def secure_production(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_SECRET
    settings.ALLOWED_HOSTS = ["kiln.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000


def test_kiln_check_passes_on_the_shipped_files_with_production_settings(settings) -> None:
    secure_production(settings)
    out = StringIO()
    call_command("kiln", "check", "--deploy-dir", str(SHIPPED), stdout=out)
    assert out.getvalue().splitlines()[-1] == f"No findings in {SHIPPED} and the settings."


def test_kiln_check_prints_one_line_per_finding_and_exits_1(deploy: Path, settings) -> None:
    secure_production(settings)
    settings.DEBUG = True
    settings.SESSION_COOKIE_SECURE = False
    edit_section(
        deploy / "supervisor" / "kiln.conf", "program:worker-high", "stopasgroup=false", "stopasgroup=true"
    )
    out = StringIO()
    with pytest.raises(CommandError, match=r"3 finding\(s\)") as raised:
        call_command("kiln", "check", "--deploy-dir", str(deploy), stdout=out)
    assert raised.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "settings: DEBUG: on: set DEBUG=false in production"
    assert lines[1].startswith("supervisor/kiln.conf: [program:worker-high] stopasgroup: true on a worker")
    assert lines[2].startswith(
        "django check --deploy: security.W012: SESSION_COOKIE_SECURE is not set to True"
    )


def test_kiln_check_with_fail_level_error_keeps_django_warnings_as_notes(settings) -> None:
    secure_production(settings)
    settings.SESSION_COOKIE_SECURE = False
    out = StringIO()
    call_command("kiln", "check", "--deploy-dir", str(SHIPPED), "--fail-level", "ERROR", stdout=out)
    assert "note: django check --deploy: security.W012" in out.getvalue()
