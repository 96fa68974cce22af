"""Thin tasks: ids in, a service call, retry and failure policy. Routed to `high` by `thumbnails.*`."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError

from mediastore import store as media_store
from outbox.worker import OutboxTask
from thumbnails import imaging, services

logger = logging.getLogger(__name__)

# Storage trouble and a lost database connection pass; a corrupt file (failed by the service at once) and a
# bad value (DataError, IntegrityError: the same on every attempt) do not.
TRANSIENT_ERRORS = (OSError, OperationalError, InterfaceError)


@worker_ready.connect
def media_store_check(sender=None, **kwargs) -> None:
    """At a worker's start, say in its log (an error, with the reason) when the media store cannot be used: its
    thumbnail jobs would otherwise only retry and fail."""
    problem = media_store.problem()
    if problem:
        logger.error("KILN_MEDIA_STORAGE: %s; thumbnail jobs retry until it is fixed", problem)


class RenditionTask(OutboxTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Called by the worker's main process after a hard time limit killed the pool process: without
        # this the image would stay pending until the sweep sent it again, and again.
        if isinstance(exc, TimeLimitExceeded) and args:
            services.image_mark_failed(
                image_id=args[0],
                reason=f"processing took longer than the {self.time_limit} s time limit",
                kind=imaging.Rejection.TOO_SLOW,
            )


@shared_task(bind=True, base=RenditionTask, name=services.RENDITION_TASK)
def rendition_generate_task(self, image_id: int, force: bool = False) -> str:
    delays = settings.KILN_THUMBNAIL_RETRY_DELAYS
    try:
        return services.rendition_generate(image_id=image_id, force=force)
    except SoftTimeLimitExceeded:
        services.image_mark_failed(
            image_id=image_id,
            reason=f"processing took longer than {self.soft_time_limit} s",
            kind=imaging.Rejection.TOO_SLOW,
        )
        return "failed"
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= len(delays):
            where = "the file store" if isinstance(exc, OSError) else "the database"
            services.image_mark_failed(
                image_id=image_id,
                reason=f"could not be processed: {where} was unavailable on {len(delays) + 1} attempts "
                "(staff can retry it)",
                detail=f"{type(exc).__name__}: {exc}",
            )
            raise
        raise self.retry(exc=exc, countdown=delays[self.request.retries], max_retries=len(delays)) from exc
    except Exception as exc:
        # A bug or an error nobody classified: fail the image visibly (the job fails too, with its
        # traceback) instead of leaving it pending for the sweep to send round forever.
        services.image_mark_failed(
            image_id=image_id,
            reason="could not be processed: an internal error (staff have the details)",
            detail=f"{type(exc).__name__}: {exc}",
        )
        raise


@shared_task(name="thumbnails.tasks.pending_sweep")
def pending_sweep_task() -> int:
    return services.image_sweep_pending()
