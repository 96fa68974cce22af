"""Thin tasks: ids in, a service call, retry policy. Routed to `high` by `thumbnails.*`."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from thumbnails import services

# Storage and database trouble passes; a corrupt file does not (the service fails it at once).
TRANSIENT_ERRORS = (OSError, DatabaseError)


@shared_task(bind=True, name="thumbnails.tasks.rendition_generate")
def rendition_generate_task(self, image_id: int, force: bool = False) -> str:
    delays = settings.KILN_THUMBNAIL_RETRY_DELAYS
    try:
        return services.rendition_generate(image_id=image_id, force=force)
    except SoftTimeLimitExceeded:
        limit = self.soft_time_limit
        services.image_mark_failed(image_id=image_id, reason=f"processing took longer than {limit} s")
        return "failed"
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= len(delays):
            services.image_mark_failed(
                image_id=image_id,
                reason=f"could not be processed after {len(delays) + 1} attempts: {type(exc).__name__}: {exc}",
            )
            raise
        raise self.retry(exc=exc, countdown=delays[self.request.retries], max_retries=len(delays)) from exc


@shared_task(name="thumbnails.tasks.pending_sweep")
def pending_sweep_task() -> int:
    return services.image_sweep_pending()
