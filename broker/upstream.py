"""The private members of kombu, Celery and redis-py that the broker layer relies on, as data: the canary test
(tests/broker/test_upstream.py) checks each against the installed libraries, so an upgrade that renames,
removes or re-signs one fails with its name instead of breaking recovery at 3 a.m.

`broker/__init__.py` lists the same members in prose, for readers; a test keeps the two lists equal.
"""

from __future__ import annotations

from dataclasses import dataclass

# The versions this list was checked against (requirements.txt pins them).
CHECKED_WITH = {"kombu": "5.7.0", "celery": "5.7.0", "redis": "8.1.0"}


@dataclass(frozen=True)
class Member:
    owner: str  # "package.module:Class" or "package.module"
    name: str
    # The parameters of a method Kiln overrides or calls, as inspect.signature prints them; None: only its
    # presence counts (an attribute, a class, or an instance attribute set in the owner's source).
    signature: str | None = None
    # A value Kiln hard-codes too (a Redis key name), compared with the library's.
    value: object = None


REDIS_CHANNEL = "kombu.transport.redis:Channel"
REDIS_QOS = "kombu.transport.redis:QoS"
VIRTUAL_QOS = "kombu.transport.virtual:QoS"
VIRTUAL_TRANSPORT = "kombu.transport.virtual:Transport"
CONSUMER = "celery.worker.consumer.consumer:Consumer"

MEMBERS: tuple[Member, ...] = (
    # The reliable fetch (broker/transport.py).
    Member(REDIS_CHANNEL, "_brpop_start", "(self, timeout=None)"),
    Member(REDIS_CHANNEL, "_brpop_read", "(self, **options)"),
    Member(REDIS_CHANNEL, "_get", "(self, queue)"),
    Member(REDIS_CHANNEL, "basic_get", "(self, queue, no_ack=False, **kwargs)"),
    Member(REDIS_CHANNEL, "basic_consume", "(self, queue, *args, **kwargs)"),
    Member(REDIS_CHANNEL, "_connparams", "(self, asynchronous=False)"),
    Member(REDIS_CHANNEL, "_poll_error", "(self, type, **options)"),
    Member(REDIS_CHANNEL, "_on_connection_disconnect", "(self, connection)"),
    Member(REDIS_CHANNEL, "_q_for_pri", "(self, queue, pri)"),
    Member(REDIS_CHANNEL, "_flush_brpop_reauth", "(self)"),
    Member(REDIS_CHANNEL, "_maybe_update_queues_expire", "(self, client, queue)"),
    Member(
        REDIS_CHANNEL, "_do_restore_message", "(self, payload, exchange, routing_key, pipe, leftmost=False)"
    ),
    Member(REDIS_CHANNEL, "conn_or_acquire", "(self, client=None)"),
    Member(REDIS_CHANNEL, "from_transport_options"),
    Member(REDIS_CHANNEL, "_in_poll"),
    Member(REDIS_CHANNEL, "_brpop_sent_at"),
    Member(REDIS_CHANNEL, "_queue_cycle"),
    Member(REDIS_CHANNEL, "priority_steps"),
    Member(REDIS_CHANNEL, "brpop_timeout"),
    Member(REDIS_CHANNEL, "ack_emulation"),
    Member(REDIS_CHANNEL, "global_keyprefix"),
    Member(REDIS_CHANNEL, "sep", value="\x06\x16"),
    Member(REDIS_CHANNEL, "unacked_key", value="unacked"),
    Member(REDIS_CHANNEL, "unacked_index_key", value="unacked_index"),
    Member(REDIS_QOS, "restore_unacked_once", "(self, stderr=None)"),
    Member(REDIS_QOS, "ack", "(self, delivery_tag)"),
    Member(REDIS_QOS, "append", "(self, message, delivery_tag)"),
    Member(REDIS_QOS, "_remove_from_indices", "(self, delivery_tag, pipe=None)"),
    Member("kombu.transport.redis", "PRIORITY_STEPS"),
    Member(VIRTUAL_QOS, "ack", "(self, delivery_tag)"),
    Member(VIRTUAL_QOS, "append", "(self, message, delivery_tag)"),
    Member(VIRTUAL_QOS, "_delivered"),
    Member(VIRTUAL_QOS, "restored"),
    Member(VIRTUAL_QOS, "_on_collect"),
    Member(VIRTUAL_TRANSPORT, "_callbacks"),
    Member(VIRTUAL_TRANSPORT, "_deliver", "(self, message, queue)"),
    Member("kombu.transport", "TRANSPORT_ALIASES"),
    Member("kombu.transport", "_transport_cache"),
    # The worker side (broker/worker.py, broker/lease.py).
    Member(CONSUMER, "on_connection_error_after_connected", "(self, exc)"),
    Member(CONSUMER, "connect", "(self)"),
    Member(CONSUMER, "controller"),
    Member("celery.worker.consumer.tasks:Tasks", "task_consumer"),
    Member(CONSUMER, "cancel_task_queue", "(self, queue)"),
    Member(
        CONSUMER,
        "add_task_queue",
        "(self, queue, exchange=None, exchange_type=None, routing_key=None, **options)",
    ),
    Member("celery.worker.consumer.consumer", "CANCEL_TASKS_BY_DEFAULT"),
    Member("celery.concurrency.asynpool:AsynPool", "_track_child_process", "(self, proc, hub)"),
    Member("celery.concurrency.asynpool:AsynPool", "_sentinel_poll"),
    Member("celery.worker.state", "requests"),
    Member("celery.worker.state", "active_requests"),
    Member("celery.worker.state", "reserved_requests"),
    Member("celery.worker.state", "scheduled_requests"),
    Member("celery.worker.autoscale:Autoscaler", "max_concurrency"),
    Member("celery.worker.autoscale:Autoscaler", "min_concurrency"),
    Member("celery.concurrency.base:BasePool", "num_processes"),
    Member(
        "celery.backends.redis:RedisBackend",
        "mark_as_retry",
        "(self, task_id, exc, traceback=None, request=None, store_result=True, state='RETRY')",
    ),
    # redis-py: a fetch is sent and its reply read apart, as kombu does.
    Member("redis.client:Redis", "parse_response", "(self, connection, command_name, **options)"),
    Member("redis.connection:Connection", "send_command", "(self, *args, **kwargs)"),
)
