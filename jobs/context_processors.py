from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def operator_links(request: HttpRequest) -> dict[str, str]:
    """Where the site and the admin's home page send people for Flower."""
    return {"flower_url": settings.KILN_FLOWER_URL}
