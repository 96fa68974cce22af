from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import app
from tests.support.probe_tasks import RECORDS_KEY
from tests.support.processes import RedisServer, stack_environment, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port for the whole run; each test starts from an empty db."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def empty_broker(server: RedisServer) -> None:
    """Drop queued messages and records, keep kombu's queue bindings: running workers declared them once."""
    client = server.client()
    doomed = [key for key in client.scan_iter() if not key.startswith("_kombu.binding.")]
    if doomed:
        client.delete(*doomed)


@pytest.fixture
def broker(redis_server: RedisServer) -> RedisServer:
    empty_broker(redis_server)
    return redis_server


@pytest.fixture
def stack_env(tmp_path: Path, broker: RedisServer) -> dict[str, str]:
    """Environment for Kiln processes of one test: its own var dir and the private broker."""
    return stack_environment(tmp_path / "var", broker.url)


class Probe:
    """Publishes probe tasks through Kiln's own Celery app to the private broker, reads what they recorded."""

    def __init__(self, broker: RedisServer) -> None:
        self.broker = broker
        self.connection = app.connection_for_write(broker.url)

    def send(self, key: str, *, queue: str, sleep: float = 0.0) -> None:
        app.send_task(
            "probe.record",
            args=[key, time.time(), sleep],
            queue=queue,
            connection=self.connection,
            ignore_result=True,
        )

    def records(self) -> list[dict]:
        return [json.loads(raw) for raw in self.broker.client().lrange(RECORDS_KEY, 0, -1)]

    def record(self, key: str) -> dict | None:
        return next((r for r in self.records() if r["key"] == key), None)

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def probe(broker: RedisServer) -> Iterator[Probe]:
    client = Probe(broker)
    yield client
    client.close()
