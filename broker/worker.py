"""Kiln's side of a running worker: its lease, its consumer, paused queues that stay paused across restarts,
a fix to Celery's prefork pool, and the two remote-control commands Celery lacks.

A pool's queues are the ones its command line names (`--queues=high`). Pausing a queue is Celery's own
`cancel_consumer`; resuming adds the consumer back, but only on workers whose command line named the
queue (`kiln_resume`): `resume default` can never make worker-high consume `default`, which Celery's
`add_consumer` would. `kiln_report` answers in one round trip what `jobs status`, the dashboard and
/metrics need of a worker: its pool, configured and consumed queues, processes and running jobs.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import task_received, worker_init, worker_shutdown
from celery.worker import state as worker_state
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.control import control_command, inspect_command

from broker.lease import WorkerLease
from broker.queues import BrokerUnavailable, paused_queues
from broker.transport import DEAD_AFTER_OPTION, connection_lease_attach, connection_mark_lost

logger = logging.getLogger(__name__)


def _consuming(consumer: Any) -> list[str]:
    return sorted(queue.name for queue in consumer.task_consumer.queues) if consumer.task_consumer else []


def worker_lease(worker: Any) -> WorkerLease | None:
    """The lease of a worker (Celery's WorkController), None with recovery off."""
    return getattr(worker, "kiln_lease", None)


class Consumer(CeleryConsumer):
    """Celery's consumer (CELERY_WORKER_CONSUMER). It hands its broker connections the worker's lease, and
    marks a connection lost before Celery closes it: the channels it closes then leave their jobs to the
    worker's recovery instead of putting them back in their queues while they may still run
    (broker/transport.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The queues this worker was started with, before any pause took one away.
        self.configured_queues = sorted(self.app.amqp.queues.consume_from)

    def connect(self) -> Any:
        connection = super().connect()
        connection_lease_attach(connection, worker_lease(self.controller))
        return connection

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            connection_mark_lost(self.connection)
        with warnings.catch_warnings():
            # Kiln leaves worker_cancel_long_running_tasks_on_connection_loss off on purpose (config/settings.py
            # says why); Celery would warn at every lost connection that its default is to change.
            warnings.filterwarnings(
                "ignore", message=r"\s*In Celery 5\.1 we introduced", category=CPendingDeprecationWarning
            )
            super().on_connection_error_after_connected(exc)


class PausedQueues(bootsteps.StartStopStep):
    """Runs after the task consumer is set up and before the event loop takes the first message, at
    start-up and again after every reconnection to the broker: the queues consumed are made to match the
    paused set both ways (a resume broadcast while this worker was cut off from Redis is not missed)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer: Any) -> None:
        try:
            paused = paused_queues()
        except BrokerUnavailable as error:
            # Not knowing what is paused, consuming could take a paused queue's jobs: fail this start; the
            # consumer treats a connection error as such and starts again when the broker is back.
            raise (error.__cause__ or error) from None
        consuming = set(_consuming(consumer))
        for queue in consumer.configured_queues:
            if queue in paused and queue in consuming:
                consumer.cancel_task_queue(queue)
                logger.warning(
                    "queue %s is paused (manage.py jobs resume %s): not consuming it", queue, queue
                )
            elif queue not in paused and queue not in consuming:
                consumer.add_task_queue(queue)
                logger.warning("queue %s was resumed while this worker was away: consuming it again", queue)


@worker_init.connect
def lease_take(sender: Any = None, **kwargs: Any) -> None:
    """Before the pool starts and the first job arrives; held until every job of the worker has finished."""
    if sender is None:
        return
    dead_after = (sender.app.conf.broker_transport_options or {}).get(DEAD_AFTER_OPTION, 0)
    if dead_after:
        # The queues given with -Q are known by now (WorkController sets them up before worker_init).
        # Without -Q a worker consumes every declared queue.
        queues = tuple(sorted((sender.app.amqp.queues.consume_from or sender.app.amqp.queues).keys()))
        sender.kiln_lease = WorkerLease(sender.app, sender.hostname, dead_after, queues)
        sender.kiln_lease.start()


@worker_shutdown.connect
def lease_return(sender: Any = None, **kwargs: Any) -> None:
    # Sent after the warm shutdown finished every running job and acknowledged it.
    lease = worker_lease(sender)
    if lease is not None:
        lease.stop()
        sender.kiln_lease = None


@task_received.connect
def claim_received_job(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    lease = worker_lease(getattr(sender, "controller", None))
    if lease is not None and request is not None and request.message is not None:
        lease.claim(request.message.delivery_tag)


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
        "configured_queues": consumer.configured_queues,
        "consuming": _consuming(consumer),
        "processes": consumer.pool.num_processes if consumer.pool else 0,
        "autoscale": [autoscaler.max_concurrency, autoscaler.min_concurrency] if autoscaler else None,
        "active": active,
    }


@control_command(args=[("queue", str)], signature="<queue>")
def kiln_resume(state: Any, queue: str) -> dict[str, Any]:
    consumer = state.consumer
    if queue not in consumer.configured_queues:
        return {"ok": f"{queue} is not one of this worker's queues"}
    if queue not in _consuming(consumer):
        consumer.add_task_queue(queue)
        return {"ok": f"consuming {queue} again"}
    return {"ok": f"already consuming {queue}"}
