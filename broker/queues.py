"""What Kiln reads and changes in the Redis broker directly: queue depth and oldest wait, clearing a queue,
the set of paused queues; and the publish time every message carries, which the oldest wait is read from.

kombu's Redis transport keeps a queue as Redis lists: `<queue>` for priority 0 and `<queue>\\x06\\x16<n>` for
the other priority steps. Messages are LPUSHed and taken from the right, so the oldest is at index -1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import current_app
from kombu.transport.redis import PRIORITY_STEPS

# The header that carries the publish time with each message (Celery's messages carry none).
PUBLISHED_HEADER = "kiln_published_at"
PAUSED_KEY = "kiln:paused-queues"
# One sorted set per queue: the leases (broker/lease.py) of the workers configured to consume it, each
# scored with the time its lease expires. A member past its score belongs to a worker that stopped renewing.
CONSUMERS_PREFIX = "kiln:queue-consumers:"
# kombu's separator between a queue's name and its priority step.
PRIORITY_SEPARATOR = "\x06\x16"


class BrokerUnavailable(Exception):
    pass


def stamp_publish_time(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Receiver of Celery's before_task_publish. Always this publish's time: a retry copies its request's
    headers, the first publish's stamp included."""
    if headers is not None:
        headers[PUBLISHED_HEADER] = time.time()


# One client (with its connection pool) per broker URL and process, with timeouts: a Redis that does not
# answer makes /healthz and the dashboard say so within seconds instead of hanging a web worker.
_CLIENTS: dict[str, redis.Redis] = {}


def redis_py_url(broker_url: str) -> str:
    """kombu's `redis+socket:///path` is redis-py's `unix:///path`; redis:// and rediss:// are the same."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url[len("redis+socket://") :]
    return broker_url


def _client() -> redis.Redis:
    url = current_app.conf.broker_url
    client = _CLIENTS.get(url)
    if client is None:
        client = _CLIENTS[url] = redis.Redis.from_url(
            redis_py_url(url), socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return client


@contextmanager
def redis_client() -> Iterator[redis.Redis]:
    try:
        yield _client()
    except (redis.RedisError, OSError) as error:
        raise BrokerUnavailable(str(error)) from error


def queue_keys(queue: str) -> list[str]:
    steps = current_app.conf.broker_transport_options.get("priority_steps", PRIORITY_STEPS)
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in steps]


def _published_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw).get("headers", {}).get(PUBLISHED_HEADER)
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def queue_depths(queues: list[str]) -> dict[str, tuple[int, float | None]]:
    """Each queue's depth and the publish time (epoch seconds) of its oldest waiting job, in one round trip."""
    with redis_client() as client:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for key in queue_keys(queue):
                pipe.llen(key)
                pipe.lindex(key, -1)
        replies = pipe.execute()
    depths = {}
    per_queue = len(queue_keys(queues[0])) * 2 if queues else 0
    for index, queue in enumerate(queues):
        chunk = replies[index * per_queue : (index + 1) * per_queue]
        oldest = [stamp for stamp in map(_published_at, chunk[1::2]) if stamp is not None]
        depths[queue] = (sum(chunk[0::2]), min(oldest) if oldest else None)
    return depths


def ping() -> bool:
    try:
        with redis_client() as client:
            return bool(client.ping())
    except BrokerUnavailable:
        return False


@dataclass(frozen=True)
class DroppedMessage:
    task_id: str
    task_name: str
    retries: int


def queue_clear(queue: str) -> list[DroppedMessage]:
    """Drop every waiting message of one queue, atomically (MULTI/EXEC); returns what was dropped.

    Messages a worker has already taken (running, prefetched, or held for a retry's countdown) are in
    kombu's `unacked` hash, not in the queue: they are not cleared and will run.
    """
    keys = queue_keys(queue)
    with redis_client() as client:
        pipe = client.pipeline(transaction=True)
        for key in keys:
            pipe.lrange(key, 0, -1)
        for key in keys:
            pipe.delete(key)
        replies = pipe.execute()
    dropped = []
    for raw in (message for messages in replies[: len(keys)] for message in messages):
        try:
            headers = json.loads(raw).get("headers", {})
        except (ValueError, AttributeError):
            continue
        if headers.get("id"):
            dropped.append(
                DroppedMessage(headers["id"], headers.get("task") or "", int(headers.get("retries") or 0))
            )
    return dropped


def paused_queues() -> set[str]:
    with redis_client() as client:
        return {name.decode() if isinstance(name, bytes) else name for name in client.smembers(PAUSED_KEY)}


def queue_mark_paused(queue: str, paused: bool) -> None:
    with redis_client() as client:
        if paused:
            client.sadd(PAUSED_KEY, queue)
        else:
            client.srem(PAUSED_KEY, queue)


@dataclass(frozen=True)
class QueueConditions:
    """What keeps a queue's jobs from running, as one reader (a status page) needs it at a glance."""

    broker_ok: bool
    paused: frozenset[str] = frozenset()
    # Queues no live worker is configured to consume; None when workers keep no lease (nothing is known).
    without_workers: frozenset[str] | None = None


def queue_conditions(queues: list[str], *, leases: bool) -> QueueConditions:
    """Paused queues and queues without a live worker, in one round trip. `leases`: whether workers keep
    leases (KILN_WORKER_DEAD_AFTER_SECONDS above 0); without them no absence of workers is ever claimed."""
    try:
        with redis_client() as client:
            pipe = client.pipeline(transaction=False)
            pipe.smembers(PAUSED_KEY)
            for queue in queues:
                pipe.zcount(CONSUMERS_PREFIX + queue, time.time(), "+inf")
            paused, *consumers = pipe.execute()
    except BrokerUnavailable:
        return QueueConditions(broker_ok=False)
    return QueueConditions(
        broker_ok=True,
        paused=frozenset(name.decode() if isinstance(name, bytes) else name for name in paused),
        without_workers=frozenset(q for q, n in zip(queues, consumers, strict=True) if not n)
        if leases
        else None,
    )
