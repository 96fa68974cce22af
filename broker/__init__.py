"""Kiln's broker layer: the only code that knows kombu's and Celery's internals.

A plain package (no models, no import of any Django app): the reliable-fetch Redis transport
(`transport.py`), the worker's lease (`lease.py`), the recovery of a dead worker's jobs and the parking of a
job that kills its workers (`recovery.py`), the worker's consumer, bootstep and remote-control commands
(`worker.py`), queue inspection (`queues.py`: depth, oldest wait, clear, the paused set) and the result
backend (`results.py`). It reaches the rest of Kiln only through parameters and its signals (`signals.py`:
`job_parked`, which the job history records). docs/recovery.md says how the pieces work together.

`install(app)` wires it into a Celery app (config/celery.py calls it).

Private members of kombu, Celery and redis-py it relies on, checked against kombu 5.7.0, Celery 5.7.0 and
redis-py 8.1.0 (`upstream.py` lists them as data; tests/broker/test_upstream.py fails, naming the member,
when an upgrade removes or changes one):

- kombu's Redis transport, `kombu.transport.redis.Channel`: overridden `_brpop_start`, `_brpop_read`,
  `_get`, `basic_get`, `basic_consume`, `_connparams`, `_poll_error`, `_on_connection_disconnect`; used
  `_q_for_pri`, `_flush_brpop_reauth`, `_maybe_update_queues_expire`, `_do_restore_message`,
  `conn_or_acquire`, `from_transport_options`, `_in_poll`, `_brpop_sent_at`, `_queue_cycle`,
  `priority_steps`, `brpop_timeout`, `ack_emulation`, `global_keyprefix`, `sep`, and the key names
  `unacked_key` ("unacked") and `unacked_index_key` ("unacked_index").
- `kombu.transport.redis.QoS`: overridden `restore_unacked_once`, `ack`, `append`; used
  `_remove_from_indices`. `kombu.transport.redis.PRIORITY_STEPS`.
- kombu's virtual transport: `kombu.transport.virtual.QoS` `ack`, `append`, `_delivered` (and its
  `restored` flag), `_on_collect`; `kombu.transport.virtual.Transport` `_callbacks`, `_deliver`;
  `kombu.transport.TRANSPORT_ALIASES` and `_transport_cache`.
- Celery's worker: `celery.worker.consumer.Consumer` `on_connection_error_after_connected`, `connect`,
  `controller`, `task_consumer`, `cancel_task_queue`, `add_task_queue`, and the text of
  `CANCEL_TASKS_BY_DEFAULT`; `celery.concurrency.asynpool.AsynPool._track_child_process` and a pool
  process's `_sentinel_poll`; `celery.worker.state` `requests`, `active_requests`, `reserved_requests`,
  `scheduled_requests`; the autoscaler's `max_concurrency` and `min_concurrency`, the pool's
  `num_processes`.
- `celery.backends.redis.RedisBackend.mark_as_retry`.
- redis-py: `Redis.parse_response` and a connection's `send_command` (a fetch is sent and read apart).
"""

from __future__ import annotations

from typing import Any

# The URL schemes Kiln's transport serves: REDIS_URL and every URL derived from it (Flower's queue view too)
# stay plain redis URLs.
SCHEMES = ("redis", "rediss")
TRANSPORT = "broker.transport:Transport"


def install(app: Any) -> None:
    """Wire the broker layer into a Celery app: the transport for redis:// URLs, the publish-time stamp,
    and the worker side (lease, recovery, paused queues, remote-control commands)."""
    from celery.signals import before_task_publish
    from kombu import transport as kombu_transports

    from broker import worker
    from broker.queues import stamp_publish_time

    for scheme in SCHEMES:
        kombu_transports.TRANSPORT_ALIASES[scheme] = TRANSPORT
        # kombu caches a resolved scheme: drop one resolved before this ran.
        getattr(kombu_transports, "_transport_cache", {}).pop(scheme, None)
    # The publish time travels with each message: a queue's oldest wait, the wait alerts and the stalled
    # status read it, whether the job history is kept or not.
    before_task_publish.connect(stamp_publish_time, weak=False)
    if worker.PausedQueues not in app.steps["consumer"]:
        app.steps["consumer"].add(worker.PausedQueues)
