"""A plain HTTP client for tests that talk to nginx (or gunicorn) the way a script or browser form would."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

MB = 1024 * 1024


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Client:
    """HTTP to 127.0.0.1:port, one connection per request, keeping cookies; never follows redirects.

    Users log in with the password `pw-<username>`, as the tests that use it create them.
    """

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            all_headers = {"Content-Length": str(len(body)), **(headers or {})}
            if self.cookies:
                all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                self.cookies.update({k: m.value for k, m in SimpleCookie(value).items()})
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def login(self, username: str) -> None:
        form = self.request("GET", "/admin/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1).decode()
        body = urllib.parse.urlencode(
            {"username": username, "password": f"pw-{username}", "csrfmiddlewaretoken": token, "next": "/"}
        ).encode()
        # A browser sends the page's origin with a form POST, port included, and Django compares it
        # with the Host it was given.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin}
        done = self.request("POST", "/admin/login/", body, headers)
        assert done.status == 302, f"login of {username} failed: {done.status} {done.body[:300]!r}"


def post_streamed(
    port: int, path: str, size: int, chunks: Iterable[bytes], headers: dict[str, str] | None = None
) -> int:
    """POST a body of `size` bytes sent chunk by chunk; the server may answer before it has read them all
    (nginx refuses a Content-Length above client_max_body_size at once and closes the connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for name, value in {"Content-Type": "application/octet-stream", **(headers or {})}.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:
                conn.send(chunk)
        return conn.getresponse().status
    finally:
        conn.close()


def post_oversized(port: int, path: str, size: int) -> int:
    """POST `size` zero bytes."""
    return post_streamed(port, path, size, (b"\0" * MB for _ in range(size // MB)))
