"""The site as gunicorn serves it (`--worker-class asgi`, deploy/supervisor/kiln.conf).

ASGI for what it does at the edge: gunicorn's asyncio worker reads each request's headers and body
without a thread, so a client that trickles them (slowloris, a slow upload) holds a coroutine, not one of
the few workers. Then Django runs as under WSGI: the whole middleware chain and the view in one hop to
its thread. (Django's own ASGI handler runs an async-capable chain in async mode, handing each
middleware's hooks to that thread and back, about twenty hops a request: 1.8x the sync worker's latency
in bench/web_server.py.)
"""

from __future__ import annotations

import os

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class SynchronousASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def _application() -> SynchronousASGIHandler:
    import django

    django.setup(set_prefix=False)
    return SynchronousASGIHandler()


application = _application()
