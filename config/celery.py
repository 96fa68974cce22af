"""The Celery app. Every Celery setting lives in config/settings.py under the CELERY_ namespace."""

from __future__ import annotations

import os
import resource

from celery import Celery
from celery.signals import worker_process_init
from django.conf import settings
from kombu import transport as kombu_transports

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Kiln's broker is kombu's Redis transport with a reliable fetch (jobs/transport.py): a message is never
# out of Redis between being taken and being recorded unacknowledged. Registered under kombu's own scheme
# names, so REDIS_URL and every URL derived from it (Flower's queue view too) stay plain redis URLs.
for _scheme in ("redis", "rediss"):
    kombu_transports.TRANSPORT_ALIASES[_scheme] = "jobs.transport:Transport"
    # kombu caches a resolved scheme: drop one resolved before this module was imported.
    getattr(kombu_transports, "_transport_cache", {}).pop(_scheme, None)

app = Celery("kiln")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_of(task_name: str) -> str:
    """The queue Kiln's routes send a task to (unrouted tasks go to the default queue)."""
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


class QueueTimeLimits:
    """Task annotation: each task gets the hard and soft time limits of the queue it is routed to.

    Limits follow routing, so a task moved to another queue by `CELERY_TASK_ROUTES` changes its limits
    with it, and no task module repeats the numbers.
    """

    def annotate(self, task) -> dict[str, int] | None:
        limits = settings.KILN_QUEUE_TIME_LIMITS.get(queue_of(task.name))
        if limits is None:
            return None
        hard, soft = limits
        return {
            "time_limit": hard,
            "soft_time_limit": soft,
            # The delay of a retry after the worker was lost (and of a `self.retry()` without countdown).
            "default_retry_delay": settings.KILN_WORKER_LOST_RETRY_SECONDS,
        }


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


# Kiln's worker side (jobs/worker.py): paused queues stay paused across restarts; `manage.py jobs`
# pauses, resumes, scales and reports through the remote-control commands it registers.
import jobs.recovery  # noqa: E402, F401 - connects the worker lease (fast recovery of a dead worker's jobs)
from jobs.worker import PausedQueues  # noqa: E402 - needs the app above

app.steps["consumer"].add(PausedQueues)
