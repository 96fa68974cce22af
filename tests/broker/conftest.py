from __future__ import annotations

import pytest
from celery import Celery

from tests.support.processes import RedisServer


@pytest.fixture
def app(app_broker: RedisServer) -> Celery:
    """Kiln's Celery app, publishing to the test's Redis (recovery puts jobs back through it); its cached
    connections are dropped after the test, so no later test in this process publishes there."""
    from config.celery import app

    return app
