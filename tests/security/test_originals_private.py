"""Originals are private under `make run` too: only rendition files are served, by any path or encoding.

(Through the shipped nginx config: tests/deploy/test_nginx.py, test_originals_are_never_served_….)"""

from __future__ import annotations

import http.client
import urllib.parse

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.processes

ESCAPES = [
    "/media/originals/ab/{hash}",
    "/media/renditions/../originals/ab/{hash}",
    "/media/renditions/%2e%2e/originals/ab/{hash}",
    "/media/renditions/%2E%2E/originals/ab/{hash}",
    "/media/renditions/..%2foriginals/ab/{hash}",
    "/media/renditions/%2e%2e%2foriginals%2fab%2f{hash}",
    "/media/renditions/%252e%252e/originals/ab/{hash}",
    "/media/renditions/ab/../../originals/ab/{hash}",
    "/media/renditions//..//originals/ab/{hash}",
    "/media/renditions/%5c..%5coriginals%5cab%5c{hash}",
    "/media/renditions/{media}/originals/ab/{hash}",
]


def get(stack: Stack, path: str) -> tuple[int, bytes]:
    url = urllib.parse.urlsplit(stack.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request("GET", path)  # sent as written: no client-side normalisation of `..`
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_make_run_serves_renditions_and_never_an_original_by_any_path(stack: Stack) -> None:
    media = stack.var_dir / "media"
    content_hash = "ab" + "0" * 62
    (media / "originals" / "ab").mkdir(parents=True, exist_ok=True)
    (media / "originals" / "ab" / content_hash).write_bytes(b"ORIGINAL JPEG WITH GPS")
    (media / "renditions" / "ab" / content_hash).mkdir(parents=True, exist_ok=True)
    (media / "renditions" / "ab" / content_hash / "thumb.jpg").write_bytes(b"thumb")

    assert get(stack, f"/media/renditions/ab/{content_hash}/thumb.jpg") == (200, b"thumb")
    for escape in ESCAPES:
        path = escape.format(hash=content_hash, media=str(media).lstrip("/"))
        status, body = get(stack, path)
        assert b"ORIGINAL" not in body, f"{path} served the original"
        assert status in (400, 404), f"{path} answered {status}"
