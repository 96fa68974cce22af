"""Kiln's side of a running worker: paused queues stay paused across restarts, and three remote-control
commands (`kiln_report`, `kiln_pause`/`kiln_resume`, `kiln_scale`) that `manage.py jobs` broadcasts.

A pool's queues are the ones its command line names (`--queues=high`); pausing cancels the consumer of a
queue and resuming adds it back, but only on workers whose command line named it: `resume default` can
never make worker-high consume `default`.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import worker_init
from celery.worker import state as worker_state
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.control import control_command, inspect_command

from jobs.transport import connection_lost

logger = logging.getLogger(__name__)

# The queues this worker process was started with, before any pause took one away.
CONFIGURED_QUEUES: list[str] = []


def _consuming(consumer: Any) -> list[str]:
    return sorted(queue.name for queue in consumer.task_consumer.queues) if consumer.task_consumer else []


class PausedQueues(bootsteps.StartStopStep):
    """Runs after the task consumer is set up and before the event loop takes the first message, at
    start-up and again after every reconnection to the broker: the queues consumed are made to match the
    paused set both ways (a resume broadcast while this worker was cut off from Redis is not missed)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer: Any) -> None:
        from jobs.broker import BrokerUnavailable, paused_queues

        if not CONFIGURED_QUEUES:
            CONFIGURED_QUEUES.extend(sorted(consumer.app.amqp.queues.consume_from))
        try:
            paused = paused_queues()
        except BrokerUnavailable as error:
            # Not knowing what is paused, consuming could take a paused queue's jobs: fail this start; the
            # consumer treats a connection error as such and starts again when the broker is back.
            raise (error.__cause__ or error) from None
        consuming = set(_consuming(consumer))
        for queue in CONFIGURED_QUEUES:
            if queue in paused and queue in consuming:
                consumer.cancel_task_queue(queue)
                logger.warning(
                    "queue %s is paused (manage.py jobs resume %s): not consuming it", queue, queue
                )
            elif queue not in paused and queue not in consuming:
                consumer.add_task_queue(queue)
                logger.warning("queue %s was resumed while this worker was away: consuming it again", queue)


class Consumer(CeleryConsumer):
    """Celery's consumer (CELERY_WORKER_CONSUMER), telling Kiln's transport when the channels it closes
    close because the broker connection was lost: they leave their jobs to the worker's recovery
    instead of putting them back in their queues while they may still run (jobs/transport.py)."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        with connection_lost(), warnings.catch_warnings():
            # Kiln leaves worker_cancel_long_running_tasks_on_connection_loss off on purpose (config/settings.py
            # says why); Celery would warn at every lost connection that its default is to change.
            warnings.filterwarnings(
                "ignore", message=r"\s*In Celery 5\.1 we introduced", category=CPendingDeprecationWarning
            )
            super().on_connection_error_after_connected(exc)


def _track_child_process(original: Callable[..., None]) -> Callable[..., None]:
    """Celery 5.7's prefork pool, wrapped so a reconnection to the broker cannot crash the worker.

    When a pool process exits, the pool stops watching its sentinel and sets it to None; the process stays
    in the pool until maintain_pool (every 5 s) reaps it. A reconnection in between registers the pool with
    the event loop again, passes that None to it, and the worker exits with ValueError("file descriptor is
    None"), an unrecoverable error (celery issue 9250). Celery's cancellation of the running jobs on a lost
    connection hit that window every time (Kiln leaves it off); a process recycled or scaled down just
    before a reconnection still can. A process already seen to exit has nothing left to watch, so it is
    skipped; maintain_pool replaces it."""

    @functools.wraps(original)
    def track(pool: Any, process: Any, hub: Any) -> None:
        if hasattr(process, "_sentinel_poll") and process._sentinel_poll is None:
            return
        original(pool, process, hub)

    track.kiln_wrapped = True  # type: ignore[attr-defined]
    return track


@worker_init.connect
def pool_reconnection_fix(**kwargs: Any) -> None:
    """Only in a worker, before its pool starts."""
    from celery.concurrency.asynpool import AsynPool

    if not getattr(AsynPool._track_child_process, "kiln_wrapped", False):
        AsynPool._track_child_process = _track_child_process(AsynPool._track_child_process)


def pool_name(hostname: str) -> str:
    """`high@host` belongs to pool `high` (kiln.conf names each worker after its pool)."""
    return hostname.split("@", 1)[0]


@inspect_command()
def kiln_report(state: Any) -> dict[str, Any]:
    consumer = state.consumer
    autoscaler = consumer.controller.autoscaler
    active: dict[str, int] = {}
    for request in list(worker_state.active_requests):
        queue = (request.delivery_info or {}).get("routing_key") or ""
        active[queue] = active.get(queue, 0) + 1
    return {
        "hostname": consumer.hostname,
        "pool": pool_name(consumer.hostname),
        "configured_queues": CONFIGURED_QUEUES,
        "consuming": _consuming(consumer),
        "processes": consumer.pool.num_processes if consumer.pool else 0,
        "autoscale": [autoscaler.max_concurrency, autoscaler.min_concurrency] if autoscaler else None,
        "active": active,
    }


@control_command(args=[("queue", str)], signature="<queue>")
def kiln_pause(state: Any, queue: str) -> dict[str, Any]:
    consumer = state.consumer
    if queue in _consuming(consumer):
        consumer.cancel_task_queue(queue)
        return {"ok": f"stopped consuming {queue}"}
    return {"ok": f"not consuming {queue}"}


@control_command(args=[("queue", str)], signature="<queue>")
def kiln_resume(state: Any, queue: str) -> dict[str, Any]:
    consumer = state.consumer
    if queue not in CONFIGURED_QUEUES:
        return {"ok": f"{queue} is not one of this worker's queues"}
    if queue not in _consuming(consumer):
        consumer.add_task_queue(queue)
        return {"ok": f"consuming {queue} again"}
    return {"ok": f"already consuming {queue}"}


@control_command(args=[("processes", int), ("minimum", int)], signature="<processes> [minimum]")
def kiln_scale(state: Any, processes: int, minimum: int = -1) -> dict[str, Any]:
    consumer = state.consumer
    autoscaler = consumer.controller.autoscaler
    if autoscaler:
        floor = min(autoscaler.min_concurrency, processes) if minimum < 0 else min(minimum, processes)
        high, low = autoscaler.update(max=processes, min=floor)
        return {"ok": f"autoscale {high},{low}"}
    current = consumer.pool.num_processes
    if processes > current:
        consumer.pool.grow(processes - current)
        consumer._update_prefetch_count(processes - current)
    elif processes < current:
        consumer.pool.shrink(current - processes)
        consumer._update_prefetch_count(processes - current)
    return {"ok": f"{processes} processes"}
