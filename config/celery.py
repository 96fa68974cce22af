"""The Celery app. Every Celery setting lives in config/settings.py under the CELERY_ namespace."""

from __future__ import annotations

import os
import resource

from celery import Celery
from celery.signals import worker_process_init
from django.conf import settings

import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task's base class: a copy of a task published through the outbox runs only once (outbox/worker.py).
app = Celery("kiln", task_cls="outbox.worker:OutboxTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Kiln's broker layer: the reliable-fetch transport for redis:// URLs, worker leases and recovery, paused
# queues, the publish-time stamp every queue's oldest wait is read from (broker/).
broker.install(app)


@worker_process_init.connect
def limit_pool_process_memory(**kwargs) -> None:
    """Cap each pool process's data segment (heap and anonymous mappings, RLIMIT_DATA).

    A file that needs more memory than the cap gets a MemoryError inside its own job, which fails that
    image with a reason; without the cap the kernel's OOM killer would pick a process, maybe the worker.
    """
    limit_mb = settings.KILN_WORKER_MEMORY_LIMIT_MB
    if limit_mb:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
