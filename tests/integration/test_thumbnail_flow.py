"""Thumbnails end to end on the stack `make run` starts: HTTP upload, worker-high, files served back."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import pytest
from PIL import Image as PILImage

from tests.support.processes import wait_for
from tests.support.stack import Stack, multipart
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    result = stack.manage("create_api_token", "admin")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def request(url: str, token: str, *, data: bytes | None = None, content_type: str | None = None):
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    with urllib.request.urlopen(
        urllib.request.Request(url, data=data, headers=headers), timeout=10
    ) as response:
        return response.status, response.read()


def upload(stack: Stack, token: str, name: str, data: bytes, **fields: str) -> dict:
    body, content_type = multipart(fields, {"file": (name, data)})
    status, raw = request(f"{stack.base_url}/api/images/", token, data=body, content_type=content_type)
    assert status == 202
    return json.loads(raw)


def poll_final(status_url: str, token: str) -> dict:
    def final() -> dict | None:
        body = json.loads(request(status_url, token)[1])
        return body if body["status"] != "pending" else None

    return wait_for(final, timeout=60, interval=0.3, what=f"{status_url} to leave pending")


def test_an_image_uploaded_over_http_is_thumbnailed_by_worker_high_and_served(
    stack: Stack, token: str
) -> None:
    accepted = upload(stack, token, "house.jpg", jpeg_bytes(3000, 2000), report="Survey")
    image = poll_final(accepted["status_url"], token)
    assert image["status"] == "ready", image
    for name, box in (("thumb", 400), ("preview", 2048)):
        rendition = image["renditions"][name]
        status, data = request(rendition["url"], token)
        assert status == 200
        assert len(data) == rendition["bytes"]
        with PILImage.open(io.BytesIO(data)) as served:
            assert served.size == (rendition["width"], rendition["height"])
            assert max(served.size) == box

    # The original keeps its metadata (GPS included): its content address is guessable, it is never served.
    content_hash = image["renditions"]["thumb"]["url"].split("/renditions/", 1)[1].split("/")[1]
    with pytest.raises(urllib.error.HTTPError) as refused:
        request(f"{stack.base_url}/media/originals/{content_hash[:2]}/{content_hash}", token)
    assert refused.value.code == 404

    # The startup banner lists every registered task; a run is logged as "Task <name>[<id>] received".
    received = "Task thumbnails.tasks.rendition_generate["
    assert received in (stack.var_dir / "log" / "worker-high.log").read_text()
    assert received not in (stack.var_dir / "log" / "worker-default.log").read_text()


def test_a_corrupt_upload_fails_with_a_reason_and_the_worker_keeps_going(stack: Stack, token: str) -> None:
    truncated = jpeg_bytes(800, 600)[:2000]
    failed = poll_final(upload(stack, token, "broken.jpg", truncated)["status_url"], token)
    assert failed["status"] == "failed"
    assert failed["error"]
    fine = poll_final(upload(stack, token, "fine.jpg", jpeg_bytes(color=(9, 99, 199)))["status_url"], token)
    assert fine["status"] == "ready"


def test_the_same_job_delivered_twice_writes_the_files_once(stack: Stack, token: str) -> None:
    image = poll_final(upload(stack, token, "twice.jpg", jpeg_bytes(color=(1, 50, 100)))["status_url"], token)
    files = [stack.var_dir / "media" / r["url"].split("/media/", 1)[1] for r in image["renditions"].values()]
    before = {f: f.stat().st_mtime_ns for f in files}
    # Publish the same job again through the real broker, as a redelivery would.
    script = (
        "from thumbnails.tasks import rendition_generate_task as t; "
        f"print(t.apply_async(args=[{image['id']}]).id)"
    )
    result = stack.manage("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.strip().splitlines()[-1]  # the shell may first say what it auto-imported
    worker_log = stack.var_dir / "log" / "worker-high.log"
    wait_for(
        lambda: f"[{task_id}] succeeded" in worker_log.read_text(),
        timeout=30,
        what=f"worker-high to run the repeated job {task_id}",
    )
    assert f"[{task_id}] succeeded" in worker_log.read_text()
    assert "'ready'" in next(
        line for line in worker_log.read_text().splitlines() if f"[{task_id}] succeeded" in line
    )
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert json.loads(request(f"{stack.base_url}/api/images/{image['id']}/", token)[1]) == image


def test_ingest_with_wait_prints_one_final_line_per_file_in_argument_order(stack: Stack, tmp_path) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(color=(5, 5, 250)))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image at all\n" * 20)
    missing = tmp_path / "missing.jpg"
    result = stack.manage(
        "thumbnails", "ingest", str(good), str(missing), str(bad), "--report", "Shell", "--wait"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [str(good), str(missing), str(bad)]
    assert lines[0].split()[2] == "ready"
    assert lines[1] == f"{missing} - failed No such file or directory"
    assert lines[2].split()[2] == "failed"
    assert len(lines[2].split()) > 3, "a failed line carries its reason"


def test_a_waiting_image_says_why_it_waits_paused_no_worker_then_processing(stack: Stack, token: str) -> None:
    """Not "processing…" while nothing runs: a paused queue, then no worker at all, each show in the API
    the report page polls; once both are fixed the image is thumbnailed."""

    def waiting(status_url: str) -> str | None:
        return wait_of(status_url)[0]

    def wait_of(status_url: str) -> tuple[str | None, str | None]:
        """(reason, words) in one answer: each web process reads the broker on its own every 2 s, so two
        requests may reach processes that have not both seen the latest change yet."""
        body = json.loads(request(status_url, token)[1])
        if body["status"] != "pending":
            return body["status"], None
        return (body["waiting"] or {}).get("reason"), (body["waiting"] or {}).get("text")

    assert "paused" in stack.manage("jobs", "pause", "high").stdout
    try:
        status_url = upload(stack, token, "held.jpg", jpeg_bytes(color=(5, 15, 25)))["status_url"]
        wait_for(
            lambda: waiting(status_url) == "paused", timeout=20, what="the image to say its queue is paused"
        )
        # A worker stopped gracefully gives its lease back: its queue has no worker at once. The pause is
        # said first (it is the operator's choice; a worker started later would still not take the job).
        assert "stopped" in stack.manage("kiln", "ctl", "stop", "kiln:worker-high").stdout
        assert waiting(status_url) == "paused"
        assert "resumed" in stack.manage("jobs", "resume", "high").stdout
        _, words = wait_for(
            lambda: (answer := wait_of(status_url))[0] == "no_worker" and answer,
            timeout=20,
            what="the image to say no worker runs",
        )
        assert "no worker" in words
    finally:
        stack.manage("jobs", "resume", "high")
        stack.manage("kiln", "ctl", "start", "kiln:worker-high")
    assert poll_final(status_url, token)["status"] == "ready"
