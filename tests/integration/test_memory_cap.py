"""A file that needs more memory than a pool process may use fails as an error; the worker lives on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.support.processes import RedisServer, running_workers, stack_environment, wait_for
from tests.support.stack import run_manage
from tests.thumbnails.images import jpeg_bytes

pytestmark = [pytest.mark.processes]


def image_states(environ: dict[str, str]) -> dict[str, tuple[str, str]]:
    script = (
        "import json; from thumbnails.models import Image; "
        "print(json.dumps({i.original_name: [i.status, i.error] for i in Image.objects.all()}))"
    )
    result = run_manage(environ, "shell", "-c", script)
    assert result.returncode == 0, result.stderr
    return {name: tuple(state) for name, state in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def test_an_image_over_the_memory_cap_fails_with_a_reason_and_the_pool_survives(
    tmp_path: Path, broker: RedisServer
) -> None:
    # 45 MP is under the 50 MP pixel limit, but its decoded RGB alone (135 MB) breaks a 200 MB cap.
    big = tmp_path / "big.png"
    PILImage.linear_gradient("L").resize((7800, 5800)).convert("RGB").save(big, compress_level=1)
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg_bytes())
    environ = stack_environment(tmp_path / "var", broker.url, KILN_WORKER_MEMORY_LIMIT_MB="200")
    assert run_manage(environ, "migrate", "--verbosity=0").returncode == 0
    ingest = run_manage(environ, "thumbnails", "ingest", str(big), str(small))
    assert ingest.returncode == 0, ingest.stderr

    with running_workers(("worker-high", environ)) as (worker,):
        states = wait_for(
            lambda: (
                (s := image_states(environ)) and all(status != "pending" for status, _ in s.values()) and s
            ),
            timeout=60,
            interval=0.5,
            what="both images to leave pending",
        )
        assert states["small.jpg"] == ("ready", "")
        status, error = states["big.png"]
        assert status == "failed"
        assert "more memory than a worker may use (200 MB)" in error
        assert worker.process.poll() is None, "the worker main process must survive"
        assert "WorkerLostError" not in worker.log()
