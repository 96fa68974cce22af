"""The test side of a private broker: publish probe tasks with Kiln's own app, read what they recorded."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from config.celery import app
from tests.support.probe_tasks import FINISHED_KEY, RECORDS_KEY
from tests.support.processes import RedisServer


@dataclass(frozen=True)
class SocketRedis:
    """The embedded redis-server of a running stack (`make run`, dev.conf), reached on its unix socket."""

    socket: Path

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), db=0, decode_responses=True)


def empty_broker(server: RedisServer | SocketRedis) -> None:
    """Drop queued messages and records, keep kombu's queue bindings: running workers declared them once."""
    client = server.client()
    doomed = [key for key in client.scan_iter() if not key.startswith("_kombu.binding.")]
    if doomed:
        client.delete(*doomed)


class Probe:
    """Publishes probe tasks through Kiln's own Celery app to the private broker, reads what they recorded."""

    def __init__(self, broker: RedisServer | SocketRedis) -> None:
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

    def finished(self) -> list[dict]:
        return [json.loads(raw) for raw in self.broker.client().lrange(FINISHED_KEY, 0, -1)]

    def record(self, key: str) -> dict | None:
        return next((r for r in self.records() if r["key"] == key), None)

    def close(self) -> None:
        self.connection.release()
