"""deploy/nginx/kiln.conf as it ships: `nginx -t`, then a real nginx in front of kiln.conf's gunicorn.

Flower is replaced by a stub that records what reaches it: what these tests prove is nginx's part (the
auth_request, the blocked paths, the headers), not Flower's.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.http_client import MB, Client, post_oversized
from tests.support.nginx import NGINX_CONF, NginxHarness, Site, nginx_binary, render_kiln_conf
from tests.support.processes import (
    REPO,
    free_port,
    program_command,
    stack_environment,
    stop_process,
    wait_for,
)
from tests.support.stack import http_status, run_manage

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


class FlowerStub(BaseHTTPRequestHandler):
    """Answers every request with what it received: method, path and the forwarded headers."""

    seen: list[tuple[str, str]]

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append((self.command, self.path))
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "x-forwarded-proto": self.headers.get("X-Forwarded-Proto"),
                "x-forwarded-for": self.headers.get("X-Forwarded-For"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = answer

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Proxy:
    port: int
    site: Site
    flower_seen: list[tuple[str, str]]
    gunicorn_log: Path

    def client(self) -> Client:
        return Client(self.port)


@contextlib.contextmanager
def flower_stub(port: int) -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Stub", (FlowerStub,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def gunicorn(environ: dict[str, str], log_path: Path) -> Iterator[None]:
    """kiln.conf's own `web` command (DEBUG off: Django serves no static or media files)."""
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        program_command("web", environ), cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        login_page = f"http://127.0.0.1:{environ['KILN_PORT']}/admin/login/"
        wait_for(lambda: http_status(login_page) == 200, timeout=30, what=f"gunicorn; see {log_path}")
        yield
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    root = tmp_path_factory.mktemp("nginx")
    environ = stack_environment(
        root / "var",
        redis_url="redis://127.0.0.1:1/0",  # nothing here publishes; an upload would be kept pending
        DEBUG="false",
        SECRET_KEY="test-only-secret-key-for-the-nginx-test-of-kiln-0123456789",
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(root / "static"),
        MEDIA_ROOT=str(root / "var" / "media"),
        KILN_WEB_WORKERS="1",
    )
    for step in (("migrate", "--noinput"), ("shell", "-c", CREATE_USERS)):
        done = run_manage(environ, *step)
        assert done.returncode == 0, done.stderr
    site = Site(
        port=free_port(),
        web_port=int(environ["KILN_PORT"]),
        flower_port=int(environ["KILN_FLOWER_PORT"]),
        static_root=root / "static",
        media_root=root / "var" / "media",
    )
    kiln_conf = root / "kiln.conf"
    kiln_conf.write_text(render_kiln_conf(site))
    harness = NginxHarness(root / "nginx", NGINX)
    harness.write(kiln_conf)
    checked = harness.test_config()
    assert checked.returncode == 0, checked.stderr
    gunicorn_log = root / "gunicorn.log"
    with flower_stub(site.flower_port) as seen, gunicorn(environ, gunicorn_log):
        nginx = harness.start(site.port)
        try:
            yield Proxy(site.port, site, seen, gunicorn_log)
        finally:
            NginxHarness.stop(nginx)


def test_nginx_accepts_the_shipped_file_unchanged_in_an_http_context(tmp_path: Path) -> None:
    harness = NginxHarness(tmp_path, NGINX)
    harness.write(NGINX_CONF)
    checked = harness.test_config()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_rendering_refuses_a_kiln_conf_whose_shipped_values_moved(tmp_path: Path) -> None:
    changed = tmp_path / "kiln.conf"
    changed.write_text(NGINX_CONF.read_text().replace("127.0.0.1:5555", "127.0.0.1:5556"))
    site = Site(1, 2, 3, tmp_path, tmp_path)
    with pytest.raises(AssertionError, match=re.escape("127.0.0.1:5555")):
        render_kiln_conf(site, changed)


@pytest.mark.parametrize("path", ["/api/images/", "/reports/7/upload/"])
def test_a_30_mb_upload_gets_413_from_nginx_and_never_reaches_gunicorn(proxy: Proxy, path: str) -> None:
    assert post_oversized(proxy.port, path, 30 * MB) == 413
    assert path not in proxy.gunicorn_log.read_text()
    assert not (proxy.site.media_root / "originals").exists()


def test_the_upload_locations_pass_a_2_mb_body_on_while_everything_else_stops_at_1_mb(proxy: Proxy) -> None:
    client = proxy.client()
    body = b"\0" * (2 * MB)
    # Django's own answer to an anonymous upload: the body went through nginx.
    assert client.request("POST", "/api/images/", body).status == 401
    assert client.request("POST", "/accounts/login/", body).status == 413


def test_originals_are_never_served_and_renditions_are_inert(proxy: Proxy) -> None:
    media = proxy.site.media_root
    (media / "originals" / "ab").mkdir(parents=True)
    (media / "originals" / "ab" / "abcd").write_bytes(b"JPEG with GPS")
    (media / "renditions" / "ab" / "abcd").mkdir(parents=True)
    (media / "renditions" / "ab" / "abcd" / "thumb.jpg").write_bytes(b"thumb")
    (media / "renditions" / "evil.html").write_text("<script>alert(1)</script>")
    client = proxy.client()

    thumb = client.request("GET", "/media/renditions/ab/abcd/thumb.jpg")
    assert (thumb.status, thumb.body, thumb.headers["content-type"]) == (200, b"thumb", "image/jpeg")
    assert thumb.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in thumb.headers["content-security-policy"]
    evil = client.request("GET", "/media/renditions/evil.html")
    assert evil.headers["content-type"] == "application/octet-stream"

    assert client.request("GET", "/media/originals/ab/abcd").status == 404
    assert client.request("GET", "/media/renditions/../originals/ab/abcd").status == 404
    assert client.request("GET", "/media/renditions/%2e%2e/originals/ab/abcd").status == 404
    # nginx's answer, not Django's: no media request ever reaches gunicorn.
    assert "/media/" not in proxy.gunicorn_log.read_text()


def test_static_files_come_from_static_root(proxy: Proxy) -> None:
    (proxy.site.static_root / "css").mkdir(parents=True, exist_ok=True)
    (proxy.site.static_root / "css" / "kiln.css").write_text("body {}")
    response = proxy.client().request("GET", "/static/css/kiln.css")
    assert (response.status, response.body) == (200, b"body {}")


@pytest.mark.parametrize("path", ["/.env", "/.git/config", "/static/.hidden", "/media/renditions/.x"])
def test_dotfiles_are_denied(proxy: Proxy, path: str) -> None:
    assert proxy.client().request("GET", path).status == 403


def test_anonymous_flower_redirects_to_the_admin_login_with_next(proxy: Proxy) -> None:
    response = proxy.client().request("GET", "/flower/tasks?state=FAILURE&limit=5")
    assert response.status == 302
    assert response.headers["location"].endswith(
        "/admin/login/?next=/flower/tasks%3Fstate%3DFAILURE%26limit%3D5"
    )
    assert not [seen for seen in proxy.flower_seen if seen[1].startswith("/flower/tasks?state=FAILURE")]


def test_a_form_posted_to_nginx_on_a_port_of_its_own_passes_djangos_origin_check(proxy: Proxy) -> None:
    # A browser's Origin carries the port (http://127.0.0.1:<port>); Django accepts the POST only if the
    # Host nginx passes on carries it too. ($host drops it: a site on port 80 or 443 would never notice.)
    client = proxy.client()
    form = client.request("GET", "/accounts/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1).decode()
    body = f"username=staff&password=pw-staff&csrfmiddlewaretoken={token}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": client.origin}
    done = client.request("POST", "/accounts/login/", body, headers)
    assert done.status == 302, f"{done.status}: {done.body[:300]!r}"


def test_a_staff_user_without_the_permission_gets_403(proxy: Proxy) -> None:
    client = proxy.client()
    client.login("staff")
    assert client.request("GET", "/flower/").status == 403


def test_a_viewer_reads_flower_with_forwarded_headers_nginx_overwrote(proxy: Proxy) -> None:
    client = proxy.client()
    client.login("viewer")
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.8.7"}
    response = client.request("GET", "/flower/workers", headers=forged)
    assert response.status == 200
    assert response.json() == {
        "method": "GET",
        "path": "/flower/workers",
        "x-forwarded-proto": "http",
        "x-forwarded-for": "127.0.0.1",
    }
    # Flower's task list POSTs for its rows: a read.
    assert client.request("POST", "/flower/tasks/datatable", b"draw=1").status == 200
    assert client.request("POST", "/flower/task/abc/revoke", b"").status == 403
    assert ("POST", "/flower/task/abc/revoke") not in proxy.flower_seen


def test_an_operator_may_post_to_flower_pages(proxy: Proxy) -> None:
    client = proxy.client()
    client.login("operator")
    response = client.request("POST", "/flower/task/abc/revoke", b"")
    assert (response.status, response.json()["method"]) == (200, "POST")


@pytest.mark.parametrize("user", [None, "viewer", "operator"])
def test_flower_metrics_and_api_are_not_reachable_through_nginx_for_anyone(
    proxy: Proxy, user: str | None
) -> None:
    client = proxy.client()
    if user:
        client.login(user)
    assert client.request("GET", "/flower/metrics").status == 404
    assert client.request("GET", "/flower/api/workers").status == 403
    assert client.request("POST", "/flower/api/worker/shutdown/high@host").status == 403
    assert not [
        path for _method, path in proxy.flower_seen if path.startswith(("/flower/api", "/flower/metrics"))
    ]


def test_the_auth_endpoint_is_internal_to_nginx(proxy: Proxy) -> None:
    assert proxy.client().request("GET", "/jobs/flower-auth/").status == 404


# Last in this module: it spends the login rate limit of the address every test here comes from.
def test_nginx_limits_login_posts_per_address_and_leaves_the_form_alone(proxy: Proxy) -> None:
    """One address spraying usernames (which django-axes, counting per username and address, would not
    stop) gets nginx's 429 after a burst; the login page itself still loads."""
    client = proxy.client()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": client.origin}
    statuses = [
        client.request("POST", path, f"username=user{n}&password=guess".encode(), headers).status
        for n in range(30)
        for path in ("/accounts/login/", "/admin/login/")
    ]
    assert 403 in statuses[:10]  # Django's answer (no CSRF token): these got through
    assert statuses[-20:] == [429] * 20
    assert client.request("GET", "/accounts/login/").status == 200
    assert client.request("GET", "/admin/login/").status == 200
