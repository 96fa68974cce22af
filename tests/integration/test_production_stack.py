"""The production blueprint end to end: the shipped supervisord and nginx files, DEBUG off, through nginx only.

One stack for the whole file: `manage.py kiln run` (dev.conf, which includes the shipped kiln.conf, and
the embedded redis-server) with production settings (DEBUG off, a SECRET_KEY, ALLOWED_HOSTS, collected
static files), and a private nginx running the shipped deploy/nginx/kiln.conf with only its ports and
paths replaced. Every request goes to nginx's port; gunicorn's and Flower's are only read from the
supervisord environment to point nginx at them.

The workers load the probe tasks through `CELERY_WORKER_INCLUDE`, Celery's documented environment form of
`celery worker --include` (every CLI option reads `CELERY_<COMMAND>_<OPTION>`): supervisord passes its
environment to its programs, so kiln.conf runs unchanged.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from PIL import Image as PILImage
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.broker import Probe, SocketRedis
from tests.support.browser import RETRY_ON, text_of
from tests.support.http_client import MB, Client, post_streamed
from tests.support.nginx import NginxHarness, Site, nginx_binary, render_kiln_conf
from tests.support.probe_tasks import FINISHED_KEY, RECORDS_KEY
from tests.support.processes import PROBE_TASKS, free_port, wait_for
from tests.support.stack import ADMIN_PASSWORD, Stack, multipart, running_stack
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.processes

NGINX = nginx_binary()
if NGINX is None:
    pytest.skip(
        "nginx is not installed and could not be: `make nginx` as root, or apt-get install nginx-light",
        allow_module_level=True,
    )

CREATE_USERS = """
from django.contrib.auth.models import Permission, User
def user(name, *codenames):
    u = User.objects.create_user(name, password="pw-" + name, is_staff=True)
    u.user_permissions.set(Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
user("staff")
user("viewer", "view_dashboard")
user("operator", "view_dashboard", "operate_flower")
"""

# How long the graceful-restart test's jobs run: long enough to be certainly in flight when the restart
# starts (publishing and starting them takes about a second), short enough for the file's time budget.
IN_FLIGHT_SECONDS = 8


@dataclass
class Production:
    stack: Stack
    site: Site
    nginx_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.site.port}"

    @property
    def media_root(self) -> Path:
        return self.site.media_root

    @property
    def broker(self) -> SocketRedis:
        return SocketRedis(self.stack.var_dir / "run" / "redis.sock")

    def client(self) -> Client:
        return Client(self.site.port)

    def log(self, program: str) -> str:
        return (self.stack.var_dir / "log" / f"{program}.log").read_text(errors="replace")

    def pid(self, program: str) -> int:
        """The pid supervisord holds for a program of group kiln (0 when it is not running)."""
        done = self.stack.manage("kiln", "ctl", "pid", f"kiln:{program}")
        return int(done.stdout.strip() or 0)

    def image_count(self) -> int:
        # Read-only, straight from the stack's SQLite file (WAL: readers never block its writers).
        with contextlib.closing(sqlite3.connect(self.stack.var_dir / "db.sqlite3")) as db:
            return db.execute("SELECT count(*) FROM thumbnails_image").fetchone()[0]

    def media_files(self) -> set[Path]:
        return {path for path in self.media_root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    root = tmp_path_factory.mktemp("production")
    var_dir = root / "var"
    static_root = root / "static"
    media_root = var_dir / "media"
    nginx_port = free_port()
    with running_stack(
        var_dir,
        DEBUG="false",
        SECRET_KEY="test-only-secret-key-for-the-production-stack-test-0123456789abcdef",
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(static_root),
        MEDIA_ROOT=str(media_root),
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        CELERY_WORKER_INCLUDE=PROBE_TASKS,
    ) as stack:
        for step in (("collectstatic", "--noinput", "--verbosity=0"), ("shell", "-c", CREATE_USERS)):
            done = stack.manage(*step)
            assert done.returncode == 0, done.stderr
        stack.wait_until_running()
        site = Site(
            port=nginx_port,
            web_port=int(stack.environ["KILN_PORT"]),
            flower_port=int(stack.environ["KILN_FLOWER_PORT"]),
            static_root=static_root,
            media_root=media_root,
        )
        kiln_conf = root / "kiln.conf"
        kiln_conf.write_text(render_kiln_conf(site))
        harness = NginxHarness(root / "nginx", NGINX)
        harness.write(kiln_conf)
        checked = harness.test_config()
        assert checked.returncode == 0, checked.stderr
        nginx = harness.start(site.port)
        try:
            yield Production(stack=stack, site=site, nginx_dir=root / "nginx")
        finally:
            NginxHarness.stop(nginx)


@pytest.fixture(scope="module")
def api_token(production: Production) -> str:
    done = production.stack.manage("create_api_token", "admin")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def screenshot(browser: webdriver.Chrome, path: Path) -> None:
    assert browser.save_screenshot(str(path)), f"no screenshot saved at {path}"
    assert path.stat().st_size > 10_000, f"{path} is only {path.stat().st_size} bytes: a blank page?"


def test_an_admin_uploads_an_image_sees_its_thumbnail_dry_runs_a_purge_and_sees_both_pools_in_flower(
    production: Production, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    url = production.url
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes(1600, 1200))

    browser.get(f"{url}/admin/login/?next=/reports/")
    # The admin's stylesheets loaded (same origin: their rules are readable), from STATIC_ROOT through
    # nginx: with DEBUG off gunicorn serves no static file.
    loaded = browser.execute_script(
        "return [...document.styleSheets].filter(s => s.href && s.href.includes('/static/admin/')"
        " && s.cssRules.length > 0).length"
    )
    assert loaded, "the admin login page has no stylesheet loaded from /static/admin/"
    screenshot(browser, tmp_path / "1-admin-login.png")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.current_url == f"{url}/reports/",
        message=f"the login did not lead to the reports page; at {browser.current_url}",
    )
    browser.find_element(By.NAME, "name").send_keys("Production test")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: text_of(d, "h2") == "Production test",
        message=f"the new report's page did not open; at {browser.current_url}",
    )
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))  # choosing uploads
    WebDriverWait(browser, 60, poll_frequency=0.5, ignored_exceptions=RETRY_ON).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-status="ready"] img'),
        message="the uploaded image never showed a thumbnail",
    )
    thumb = browser.find_element(By.CSS_SELECTOR, '[data-status="ready"] img')
    src = thumb.get_attribute("src")
    assert src.startswith(f"{url}/media/renditions/"), src
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", thumb),
        message=f"the thumbnail {src} did not load",
    )
    screenshot(browser, tmp_path / "2-report.png")

    browser.get(f"{url}/admin/purge/retentionpolicy/")
    row = browser.find_element(
        By.XPATH, "//table[@id='result_list']//tr[contains(., 'Report history records')]"
    )
    row.find_element(By.NAME, "_selected_action").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("dry_run")
    browser.find_element(By.NAME, "index").click()
    message = WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: text_of(d, ".messagelist .success"),
        message="the admin did not confirm the dry run",
    )
    run_id = message.split("#", 1)[1].split(".", 1)[0]

    def run_state() -> str:
        browser.get(f"{url}/admin/purge/purgerun/{run_id}/change/")
        return browser.find_element(By.CSS_SELECTOR, ".fieldBox.field-state .readonly").text

    wait_for(lambda: run_state() == "done", timeout=60, interval=1, what=f"purge run #{run_id} to be done")
    browser.get(f"{url}/admin/purge/purgerun/")
    screenshot(browser, tmp_path / "3-purge-runs.png")

    host = socket.gethostname()
    browser.get(f"{url}/flower/")

    def both_pools_listed() -> bool:
        text = browser.find_element(By.TAG_NAME, "body").text
        if f"high@{host}" in text and f"default@{host}" in text:
            return True
        browser.refresh()
        return False

    wait_for(both_pools_listed, timeout=60, interval=1, what="Flower's workers page to list both pools")
    assert browser.current_url.startswith(f"{url}/flower/")
    screenshot(browser, tmp_path / "4-flower.png")


def test_anonymous_flower_redirects_to_the_admin_login_with_next(production: Production) -> None:
    client = production.client()
    response = client.request("GET", "/flower/workers")
    assert response.status == 302
    assert response.headers["location"] == f"{production.url}/admin/login/?next=/flower/workers"
    assert client.request("GET", "/admin/login/?next=/flower/workers").status == 200


def test_a_staff_user_without_the_dashboard_permission_gets_403_and_a_viewer_gets_flower(
    production: Production,
) -> None:
    staff = production.client()
    staff.login("staff")
    assert staff.request("GET", "/flower/").status == 403
    viewer = production.client()
    viewer.login("viewer")
    page = viewer.request("GET", "/flower/")
    assert page.status == 200
    assert b"Flower" in page.body


@pytest.mark.parametrize("user", ["viewer", "operator"])
def test_shutting_a_worker_down_through_flowers_api_is_refused_and_the_worker_lives_on(
    production: Production, user: str
) -> None:
    pid = production.pid("worker-high")
    client = production.client()
    client.login(user)
    worker = f"high@{socket.gethostname()}"
    # The worker's page first, as a person would before pressing Shutdown: it also makes Flower inspect
    # the worker, without which Flower answers 404 "Unknown worker" to a shutdown that got through.
    assert client.request("GET", f"/flower/worker/{worker}").status == 200
    response = client.request("POST", f"/flower/api/worker/shutdown/{worker}")
    assert not 200 <= response.status < 300, f"Flower's shutdown answered {response.status}"

    # Alive, and still working: a job published after the refused shutdown runs on the same process. A
    # shutdown broadcast, had it been sent, would have reached the worker before this job.
    probe = Probe(production.broker)
    try:
        probe.send(f"alive-after-shutdown-by-{user}", queue="high")
        record = wait_for(
            lambda: probe.record(f"alive-after-shutdown-by-{user}"),
            timeout=30,
            what=f"{worker} to run a job after the refused shutdown",
        )
    finally:
        probe.close()
    assert record["hostname"] == worker
    assert production.pid("worker-high") == pid, "worker-high was restarted"


def test_flower_listens_on_loopback_only(production: Production) -> None:
    # Not probed by connecting to the machine's other addresses: tests here send traffic to loopback only.
    # What the kernel is asked to listen on decides the same thing: a socket bound to 127.0.0.1 is not
    # reachable on any other address.
    flower = psutil.Process(production.pid("flower"))
    listening = [c.laddr for c in flower.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [address.port for address in listening] == [production.site.flower_port], listening
    assert all(ipaddress.ip_address(address.ip).is_loopback for address in listening), listening
    with socket.create_connection(("127.0.0.1", production.site.flower_port), timeout=5):
        pass  # the control: it does answer on loopback


@pytest.mark.parametrize("path", ["/api/images/", "/reports/1/upload/"])
def test_a_30_mb_upload_gets_413_from_nginx_and_nothing_is_stored(
    production: Production, api_token: str, path: str
) -> None:
    images, files = production.image_count(), production.media_files()
    reached_gunicorn = production.log("web").count(f"POST {path}")
    body, content_type = multipart({}, {"file": ("big.jpg", jpeg_bytes(64, 48) + b"\0" * (30 * MB))})
    headers = {"Authorization": f"Bearer {api_token}", "Content-Type": content_type}
    chunks = (body[offset : offset + MB] for offset in range(0, len(body), MB))
    assert post_streamed(production.site.port, path, len(body), chunks, headers) == 413
    assert production.image_count() == images
    assert production.media_files() == files
    assert production.log("web").count(f"POST {path}") == reached_gunicorn, "the upload reached gunicorn"


def noise_png(side: int) -> bytes:
    """Random pixels: PNG cannot compress them, so the file is about side² × 3 bytes."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_a_5_mb_image_uploaded_with_an_api_token_is_accepted_and_thumbnailed(
    production: Production, api_token: str
) -> None:
    data = noise_png(1330)
    assert 5 * MB < len(data) < 6 * MB
    body, content_type = multipart({"report": "API upload"}, {"file": ("noise.png", data)})
    client = production.client()
    bearer = {"Authorization": f"Bearer {api_token}"}
    accepted = client.request("POST", "/api/images/", body, {**bearer, "Content-Type": content_type})
    assert accepted.status == 202, accepted.body[:300]
    status_url = accepted.json()["status_url"]
    # Django built the URL from the Host nginx passed on: nginx's own address, port included.
    assert status_url.startswith(f"{production.url}/api/images/"), status_url
    path = status_url.removeprefix(production.url)

    def final() -> dict | None:
        image = client.request("GET", path, headers=bearer).json()
        return image if image["status"] != "pending" else None

    image = wait_for(final, timeout=60, interval=0.5, what=f"{path} to leave pending")
    assert image["status"] == "ready", image
    thumb = image["renditions"]["thumb"]
    served = client.request("GET", thumb["url"].removeprefix(production.url))
    assert served.status == 200
    assert len(served.body) == thumb["bytes"]


def test_a_graceful_restart_lets_every_in_flight_job_finish_once_and_the_pools_take_new_work(
    production: Production,
) -> None:
    host = socket.gethostname()
    production.broker.client().delete(RECORDS_KEY, FINISHED_KEY)
    workers = ("worker-high", "worker-default")
    old_pids = {program: production.pid(program) for program in workers}
    probe = Probe(production.broker)
    try:
        # Two long jobs per pool: worker-high's floor and worker-default's concurrency are both 2.
        in_flight = ["high-1", "high-2", "default-1", "default-2"]
        for key in in_flight:
            probe.send(key, queue=key.split("-")[0], sleep=IN_FLIGHT_SECONDS)
        # Both default processes are busy (prefetch 1): this one waits in Redis through the restart.
        probe.send("default-waiting", queue="default")
        wait_for(
            lambda: {record["key"] for record in probe.records()} >= set(in_flight),
            timeout=30,
            what="two long jobs to start on each pool",
        )
        assert probe.finished() == [], "a long job finished before the restart: nothing was in flight"

        restart = production.stack.manage("kiln", "ctl", "restart", "kiln:*", timeout=300)
        assert restart.returncode == 0, restart.stdout + restart.stderr

        # supervisorctl returns once every program stopped and started again: by then each in-flight
        # job has finished, in the pool process that started it (not in a redelivery).
        started = {record["key"]: record for record in probe.records()}
        finished = {record["key"]: record for record in probe.finished()}
        for key in in_flight:
            assert key in finished, f"{key} was in flight during the restart and never finished"
            assert finished[key]["pid"] == started[key]["pid"], f"{key} finished in another process"
        new_pids = {program: production.pid(program) for program in workers}
        for program in workers:
            assert new_pids[program] not in (0, old_pids[program]), f"{program} was not restarted"

        probe.send("high-after", queue="high")
        probe.send("default-after", queue="default")
        every_key = [*in_flight, "default-waiting", "high-after", "default-after"]
        wait_for(
            lambda: {record["key"] for record in probe.finished()} >= set(every_key),
            timeout=60,
            what="the waiting job and the jobs published after the restart to run",
        )
        records, finishes = probe.records(), probe.finished()
    finally:
        probe.close()

    started_keys = [record["key"] for record in records]
    assert sorted(started_keys) == sorted(every_key), "a job ran twice, or one ran that was never sent"
    assert sorted(record["key"] for record in finishes) == sorted(every_key)
    hostnames = {record["key"]: record["hostname"] for record in records}
    for key in ("default-waiting", "default-after"):
        assert hostnames[key] == f"default@{host}"
    assert hostnames["high-after"] == f"high@{host}"
    for program in workers:
        log = production.log(program)
        assert "WorkerLostError" not in log, f"{program}.log has a WorkerLostError"
        # TERM reached the Celery main process, which took the warm path (finish, then exit).
        assert "Warm shutdown (MainProcess)" in log, f"{program}.log shows no warm shutdown"
