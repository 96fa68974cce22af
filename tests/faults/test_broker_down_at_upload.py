"""Fault 5: uploads while Redis is stopped. They are accepted (202: the image is stored and pending; the
API says so, the upload does not fail because a queue is unreachable), and once Redis is back every one of
them is thumbnailed by the pending sweep (every KILN_PENDING_SWEEP_SECONDS, for images that old whose
dispatch never got through), with no operator action. The sweep runs every 5 s here instead of every
minute: the same path, in a twelfth of the time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_thumbnail_flow import request, upload
from tests.support.processes import wait_for
from tests.support.stack import Stack, running_stack
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.faults


SWEEP_SECONDS = 5


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path / "var", KILN_PENDING_SWEEP_SECONDS=str(SWEEP_SECONDS)) as stack:
        stack.wait_until_running()
        yield stack


def test_uploads_made_while_redis_is_down_are_thumbnailed_after_it_returns(stack: Stack) -> None:
    token = stack.manage("create_api_token", "admin").stdout.strip().splitlines()[-1]
    assert "stopped" in stack.manage("kiln", "ctl", "stop", "redis").stdout
    started = time.monotonic()
    accepted = [
        upload(stack, token, f"offline-{n}.jpg", jpeg_bytes(color=(n * 40, 90, 200))) for n in range(3)
    ]
    upload_seconds = time.monotonic() - started
    assert all(image["status"] == "pending" for image in accepted)
    # The page says why nothing moves: not "processing…".
    waiting = json.loads(request(accepted[0]["status_url"], token)[1])["waiting"]
    assert waiting["reason"] == "broker_unreachable", waiting
    assert upload_seconds < 10, f"three uploads took {upload_seconds:.1f} s with the broker down"

    assert "started" in stack.manage("kiln", "ctl", "start", "redis").stdout
    back_at = time.monotonic()

    def all_ready() -> bool:
        states = [json.loads(request(image["status_url"], token)[1])["status"] for image in accepted]
        return all(state == "ready" for state in states)

    # The workers and beat reconnect (a few seconds), the sweep fires once the images are a sweep interval
    # old, and the thumbnails take a second or two: well within a minute.
    wait_for(all_ready, timeout=60, interval=1, what="every image uploaded while Redis was down to be ready")
    assert time.monotonic() - back_at < 60
