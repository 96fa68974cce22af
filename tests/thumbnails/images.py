"""Small image files for service, API and command tests (the imaging corpus lives in corpus.py)."""

from __future__ import annotations

import io

from PIL import Image as PILImage


def jpeg_bytes(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    image = PILImage.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste(color, (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()
