"""One user floods the upload API with cheap, expensive images; how long does another user's photo wait?

Starts the whole stack (`manage.py kiln run`) in a temporary directory with two users, `attacker` and
`victim`, each with an API token. Then, side by side in one run:
  1. idle: the victim uploads one 2 MP photo and waits for `ready` (upload answer -> ready), --repeat times;
  2. flood: the attacker sends --flood (60) distinct 49 MP PNGs of about 150 KB each (a flat colour, each
     with a unique tail) as fast as 4 connections allow, then the victim uploads the same photo again;
  3. heavy flood (information): the same with PNGs of about 800 KB (a square of noise), which pass the
     pixels-per-byte check, so only the per-user limits hold them; the attacker is then a new user.
Prints what the attacker got (accepted, refused with 429 or 400) and the victim's delay in each phase.
Exits 1 when the victim's photo waits more than 3× its idle time plus 2 s under the flood (phase 2).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from PIL import Image

from tests.support.stack import Stack, running_stack
from tests.thumbnails.images import jpeg_bytes

USERS = (
    "from django.contrib.auth import get_user_model; from accounts.models import ApiToken; "
    "U = get_user_model(); "
    "print(*[ApiToken.issue(U.objects.create_user(n, password='pw-' + n))[1] for n in ('attacker', 'victim', 'heavy')])"
)


def bomb_png(noise: int = 0) -> bytes:
    """49 MP of one colour: about 150 KB to send, the full 49 MP for a worker to decode and resize. With
    `noise`, a square of that many pixels a side is random (incompressible): a file heavy enough to pass
    the pixels-per-byte check, which only the per-user limits then hold."""
    image = Image.new("RGB", (7000, 7000), (90, 140, 200))
    if noise:
        image.paste(Image.frombytes("RGB", (noise, noise), os.urandom(noise * noise * 3)), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def time_to_ready(stack: Stack, token: str, data: bytes, name: str, timeout: float = 300) -> float:
    status, body = stack.upload(token, name, data)
    assert status == 202, (status, body)
    started = time.monotonic()
    request = urllib.request.Request(body["status_url"], headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() - started < timeout:
        with urllib.request.urlopen(request, timeout=30) as response:
            state = json.loads(response.read())["status"]
        if state != "pending":
            assert state == "ready", state
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"the victim's photo was not ready after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flood", type=int, default=60, help="49 MP PNGs the attacker sends (60)")
    parser.add_argument("--repeat", type=int, default=3, help="idle measurements of the victim (3)")
    args = parser.parse_args()

    bomb, heavy = bomb_png(), bomb_png(noise=500)
    photo = jpeg_bytes(1600, 1200, color=(200, 60, 30))
    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-flood-") as tmp,
        running_stack(
            Path(tmp) / "var", DJANGO_SUPERUSER_PASSWORD="kiln-bench-flood", LOG_LEVEL="WARNING"
        ) as stack,
    ):
        stack.wait_until_running()
        attacker, victim, heavy_attacker = stack.manage("shell", "-c", USERS).stdout.split()[-3:]

        idle = [
            time_to_ready(stack, victim, photo + f"idle-{n}".encode(), f"idle-{n}.jpg")
            for n in range(args.repeat)
        ]

        def flood(token: str, png: bytes) -> list[int]:
            with ThreadPoolExecutor(4) as pool:
                return list(
                    pool.map(
                        lambda n: stack.upload(token, f"bomb-{n}.png", png + f"tail-{n}".encode())[0],
                        range(args.flood),
                    )
                )

        answers = flood(attacker, bomb)
        flooded = time_to_ready(stack, victim, photo + b"flooded", "flooded.jpg")
        heavy_answers = flood(heavy_attacker, heavy)
        heavy_flooded = time_to_ready(stack, victim, photo + b"heavy", "heavy.jpg")

    def counts(answers: list[int]) -> dict[int, int]:
        return {status: answers.count(status) for status in sorted(set(answers))}

    idle_median = statistics.median(idle)
    print(f"flood: {args.flood} PNGs of 49 MP, {len(bomb) / 1024:.0f} KB each; answers {counts(answers)}")
    print(
        f"heavy flood: {args.flood} PNGs of 49 MP, {len(heavy) / 1024:.0f} KB each; answers {counts(heavy_answers)}"
    )
    print(f"{'victim photo, upload -> ready':32} {'seconds':>8}")
    print(f"{f'idle (median of {len(idle)})':32} {idle_median:8.2f}")
    print(f"{'right after the flood':32} {flooded:8.2f}")
    print(
        f"{'right after the heavy flood':32} {heavy_flooded:8.2f}  (information: the per-user limits hold it)"
    )
    limit = 3 * idle_median + 2
    verdict = "met" if flooded <= limit else "MISSED"
    print(
        f"target: under the flood at most 3x idle + 2 s = {limit:.2f} s: {verdict} ({flooded / idle_median:.1f}x idle)"
    )
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
