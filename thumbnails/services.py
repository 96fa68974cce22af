"""Writes for images and renditions. Decoding happens only in `rendition_generate`, i.e. in workers."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from mediastore.store import StorageUnavailable
from thumbnails import imaging, storage
from thumbnails.models import Image, InputRejection, Rendition

logger = logging.getLogger(__name__)

# The task that makes an image's renditions (thumbnails/tasks.py). Published by its name: the tasks call
# these services, and the services never import the tasks.
RENDITION_TASK = "thumbnails.tasks.rendition_generate"

# Attempts per image before it is failed for good: the first try and three retries (10, 30, 60 s), and
# room for two redeliveries after a lost worker. A forced regenerate starts the count again.
MAX_ATTEMPTS = 6


class UploadRejected(Exception):
    """The upload is refused before anything is stored; `reason` is for the uploader. A refusal for a limit
    that lifts with time (429) says when, in seconds, in `retry_after`."""

    def __init__(self, reason: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


# Users with this permission (superusers have all) upload without the per-user limits: operators and
# the service accounts that feed Kiln in bulk.
UNLIMITED_PERMISSION = "thumbnails.upload_without_limits"


def upload_quota_check(*, user, byte_size: int, pixels: int) -> None:
    """Per-user limits, counted from the database (so every web process and host agrees): uploads in the
    last minute, bytes and megapixels in the last hour. Raises UploadRejected(429) with the seconds until
    this upload would fit."""
    if user is None or not user.is_authenticated or user.has_perm(UNLIMITED_PERMISSION):
        return
    now = timezone.now()
    # The last hour's uploads, oldest first: the minute's count is their tail.
    hour = list(
        Image.objects.filter(uploaded_by=user, created_at__gt=now - timedelta(hours=1))
        .order_by("created_at")
        .values_list("created_at", "byte_size", "width", "height")
    )
    minute = [row[0] for row in hour if row[0] > now - timedelta(minutes=1)]
    limit = settings.KILN_UPLOADS_PER_MINUTE
    if len(minute) >= limit:
        wait = _seconds_until(minute[len(minute) - limit] + timedelta(minutes=1), now)
        raise UploadRejected(
            f"too many uploads: at most {limit} a minute; try again in {wait} s", status=429, retry_after=wait
        )
    budgets = (
        ("MB", settings.KILN_UPLOAD_MB_PER_HOUR, 1_048_576, byte_size, lambda row: row[1]),
        (
            "megapixels",
            settings.KILN_UPLOAD_MEGAPIXELS_PER_HOUR,
            1_000_000,
            pixels,
            lambda row: (row[2] or 0) * (row[3] or 0),
        ),
    )
    for unit, limit, scale, this, amount in budgets:
        used = sum(amount(row) for row in hour)
        if used + this <= limit * scale:
            continue
        # The moment enough of the last hour's uploads have aged out for this one to fit.
        excess, wait = used + this - limit * scale, 3600
        for row in hour:
            excess -= amount(row)
            if excess <= 0:
                wait = _seconds_until(row[0] + timedelta(hours=1), now)
                break
        raise UploadRejected(
            f"upload limit reached: at most {limit:,} {unit} an hour; try again in {wait} s",
            status=429,
            retry_after=wait,
        )


def _seconds_until(moment, now) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def pixels_plausible(*, pixels: int, byte_size: int) -> bool:
    """A photo of N pixels takes some bytes: a 49 MP PNG of 140 KB is a flat colour sent to cost a worker
    its decoding time. Small images (icons, diagrams) are always fine."""
    if pixels <= settings.KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS * 1_000_000:
        return True
    return pixels <= byte_size * settings.KILN_UPLOAD_MAX_PIXELS_PER_BYTE


# Apps above thumbnails (reports) attach uploaded images to their own objects. They register here
# instead of thumbnails importing them, so the dependency arrows keep pointing one way.
ImageOwner = Callable[[Image, str, object], None]
IMAGE_OWNERS: dict[str, ImageOwner] = {}


def image_owner_register(field: str, attach: ImageOwner) -> None:
    IMAGE_OWNERS[field] = attach


# Who sees an image: its uploader, staff, and whoever an app above grants it to (reports: the users who
# see a report that holds it). Each registered function returns the condition for one user.
IMAGE_VISIBILITY: list[Callable[[object], Q]] = []


def image_visibility_register(condition: Callable[[object], Q]) -> None:
    IMAGE_VISIBILITY.append(condition)


# Filters of the image list (`GET /api/images/?<field>=…`) that apps above offer (reports: `report`). Each
# returns the condition for one value, or raises LookupError with a message for a 404.
IMAGE_FILTERS: dict[str, Callable[[object, str], Q]] = {}


def image_filter_register(field: str, condition: Callable[[object, str], Q]) -> None:
    IMAGE_FILTERS[field] = condition


def images_visible(user) -> QuerySet[Image]:
    if not user.is_authenticated or not user.is_active:
        return Image.objects.none()
    if user.is_staff:
        return Image.objects.all()
    condition = Q(uploaded_by=user)
    for granted in IMAGE_VISIBILITY:
        condition |= granted(user)
    # Through a subquery: an image in two visible reports is still one row.
    return Image.objects.filter(pk__in=Image.objects.filter(condition).values("pk"))


def image_create(
    *,
    upload,
    original_name: str,
    uploaded_by=None,
    owners: dict[str, str] | None = None,
    dispatch: bool = True,
) -> Image:
    """Store an upload at its content address and queue its renditions once the transaction commits.

    `dispatch=False` leaves that to a caller that stores many and sends them with `images_dispatch`."""
    size = upload.size
    if size == 0:
        raise UploadRejected("the file is empty")
    if size > settings.KILN_UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"the file is {size / 1_048_576:.1f} MB; the limit is {settings.KILN_UPLOAD_MAX_MB} MB",
            status=413,
        )
    dimensions = imaging.probe_size(upload)
    pixels = dimensions[0] * dimensions[1] if dimensions else 0
    if not pixels_plausible(pixels=pixels, byte_size=size):
        raise UploadRejected(
            f"the file is {size / 1024:,.0f} KB for {pixels / 1_000_000:.0f} megapixels: too small to be a photo "
            f"of that size (at most {settings.KILN_UPLOAD_MAX_PIXELS_PER_BYTE} pixels per byte above "
            f"{settings.KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS} MP)"
        )
    upload_quota_check(user=uploaded_by, byte_size=size, pixels=pixels)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    content_hash = digest.hexdigest()
    name = storage.original_name(content_hash)
    try:
        if storage.exists(name):  # an identical upload is stored once
            storage.touch(name)
        else:
            upload.seek(0)
            storage.write_atomic(name, upload.chunks())
    except StorageUnavailable as exc:
        # Nothing was stored: an object store writes a key whole or not at all, and no row exists yet.
        logger.error("upload %r refused: %s", original_name[:100], exc)
        raise UploadRejected(
            "the file store is unavailable right now; nothing was saved, please try again in a minute",
            status=503,
            retry_after=60,
        ) from None
    with transaction.atomic():
        image = Image.objects.create(
            original=name,
            # Control characters (a NUL, which PostgreSQL refuses) never belong in a file's name.
            original_name="".join(c for c in original_name if c.isprintable())[:255] or "unnamed",
            content_hash=content_hash,
            byte_size=size,
            uploaded_by=uploaded_by,
            # From the header, for the per-user megapixel budget; the worker confirms them.
            width=dimensions[0] if dimensions else None,
            height=dimensions[1] if dimensions else None,
        )
        for field, value in (owners or {}).items():
            IMAGE_OWNERS[field](image, value, uploaded_by)
        if dispatch:
            # robust: a broker or database hiccup in the dispatch never turns a committed upload into an error.
            transaction.on_commit(lambda: image_dispatch(image_id=image.id), robust=True)
    return image


def image_dispatch(*, image_id: int, force: bool = False) -> bool:
    """Queue the renditions job. A broker outage is logged, not raised: the image stays pending and the
    periodic sweep dispatches it again, so an upload never fails because Redis is down."""
    # ignore_result: a process that never imported the task module publishes through send_task, which
    # would otherwise subscribe to the result in Redis (CELERY_TASK_IGNORE_RESULT does not reach it).
    job = current_app.signature(RENDITION_TASK, args=[image_id], kwargs={"force": force}, ignore_result=True)
    try:
        # No publish retries: fail fast and leave the image to the sweep rather than hold a request.
        job.apply_async(retry=False)
    except (OperationalError, OSError) as exc:
        logger.warning("image %s stays pending: the broker is unreachable (%s)", image_id, exc)
        return False
    Image.objects.filter(pk=image_id).update(dispatched_at=timezone.now())
    return True


def images_dispatch(*, image_ids: list[int], force: bool = False) -> int:
    """Dispatch several images, stopping at the first broker failure: while Redis is down a report with many
    pending images, a many-file upload or a regenerate pays for one failed connection attempt, not one per
    image (the sweep sends the rest later)."""
    sent = 0
    for image_id in image_ids:
        if not image_dispatch(image_id=image_id, force=force):
            break
        sent += 1
    return sent


def expected_spec_keys() -> dict[str, str]:
    return {spec.name: imaging.spec_key(spec) for spec in imaging.DEFAULT_SPECS}


def renditions_current(image: Image, renditions: list[Rendition] | None = None) -> bool:
    """Every rendition exists, was made by today's spec and pipeline, and its file is in storage."""
    if renditions is None:
        renditions = list(image.renditions.all())
    have = {r.name: r for r in renditions}
    for name, key in expected_spec_keys().items():
        rendition = have.get(name)
        if rendition is None or rendition.spec_key != key or not storage.exists(rendition.file):
            return False
    return True


def image_needs_dispatch(image: Image, *, now=None) -> bool:
    """Missing or stale renditions, and no job sent for it recently (a render must not flood the queue)."""
    if image.status == Image.Status.FAILED:
        return False  # a permanent failure: an operator regenerates it on purpose
    if image.status == Image.Status.READY and renditions_current(image, list(image.renditions.all())):
        return False
    now = now or timezone.now()
    recent = now - timedelta(minutes=settings.KILN_PENDING_REDISPATCH_MINUTES)
    return image.dispatched_at is None or image.dispatched_at < recent


def image_mark_failed(*, image_id: int, reason: str, detail: str = "", kind: str = "") -> None:
    """`reason` is shown to whoever sees the image: a sentence, never a server path or exception text;
    `detail` (the technical cause) only to staff in the admin. `kind` (an `imaging.Rejection`) says the
    input was at fault, and operators count it as a rejected input; empty for a failure of Kiln's own
    (storage, database, a bug), which the failed job already reports."""
    fields = {
        "status": Image.Status.FAILED,
        "error": reason,
        "error_detail": detail,
        "error_kind": kind,
        "processed_at": timezone.now(),
    }
    with transaction.atomic():
        if Image.objects.filter(pk=image_id, status=Image.Status.PENDING).update(**fields):
            if kind:
                InputRejection.objects.create(
                    image_id=image_id, kind=kind, rejected_at=fields["processed_at"]
                )
        else:
            # Failed already (another delivery of the same job): its reason is refreshed, the rejection was
            # counted once. Never over a `ready`: that delivery may have finished it meanwhile (an
            # operator's regenerate sets the image back to pending first).
            Image.objects.filter(pk=image_id, status=Image.Status.FAILED).update(**fields)


def rendition_generate(*, image_id: int, force: bool = False) -> str:
    """Make both renditions of one image; safe to run any number of times. Returns the final status.

    A file that can never become an image fails at once with its reason. Storage and database errors
    propagate, for the task to retry.
    """
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return "gone"  # deleted after the job was queued
    if not force and image.status == Image.Status.READY and renditions_current(image):
        return image.status
    Image.objects.filter(pk=image_id).update(attempts=F("attempts") + 1, started_at=timezone.now())
    if image.attempts + 1 > MAX_ATTEMPTS:
        # Retries, redeliveries after a pool process died on this file, sweeps: all end here, so a file that
        # crashes its process (a decoder fault, the memory cap) is parked instead of looping forever.
        image_mark_failed(
            image_id=image_id,
            reason=f"gave up after {MAX_ATTEMPTS} attempts: processing crashed the worker or timed out",
            # Counted against the input, like the memory cap: what ends here is a file that took its
            # process down on every attempt.
            kind=imaging.Rejection.CRASHED_WORKER,
        )
        return Image.Status.FAILED
    if not force and (copied := _copy_from_twin(image)) is not None:
        return Image.Status.READY if copied else "gone"

    with storage.open_file(image.original) as source:
        try:
            result = imaging.render_image(
                source,
                max_pixels=settings.KILN_IMAGE_MAX_MEGAPIXELS * 1_000_000,
                max_bytes=settings.KILN_UPLOAD_MAX_BYTES,
            )
        except imaging.ImageRejected as exc:
            image_mark_failed(image_id=image_id, reason=exc.reason, kind=exc.kind)
            return Image.Status.FAILED
        except MemoryError:
            image_mark_failed(
                image_id=image_id,
                reason=f"the image needs more memory than a worker may use "
                f"({settings.KILN_WORKER_MEMORY_LIMIT_MB} MB)",
                kind=imaging.Rejection.TOO_MUCH_MEMORY,
            )
            return Image.Status.FAILED

    specs = {spec.name: spec for spec in imaging.DEFAULT_SPECS}
    rows = []
    for name, rendition in result.renditions.items():
        key = imaging.spec_key(specs[name])
        file_name = storage.rendition_name(image.content_hash, key, rendition.extension)
        storage.write_atomic(file_name, [rendition.data])
        rows.append((name, key, file_name, rendition.width, rendition.height, len(rendition.data)))
    if not _save_result(image, result.facts, rows):
        return "gone"  # deleted while it was processed: its files are left to the purge's file policies
    return Image.Status.READY


def _save_result(image: Image, facts: imaging.ImageFacts, rows: list[tuple]) -> bool:
    """False when the image was deleted meanwhile (nothing is written)."""
    with transaction.atomic():
        # The row lock makes a delete wait for this transaction, or this one see the delete: never
        # renditions pointing at an image that is gone (an IntegrityError at commit).
        if not Image.objects.select_for_update().filter(pk=image.pk).exists():
            return False
        for name, key, file_name, width, height, size in rows:
            Rendition.objects.update_or_create(
                image=image,
                name=name,
                defaults={
                    "spec_key": key,
                    "file": file_name,
                    "width": width,
                    "height": height,
                    "byte_size": size,
                },
            )
        Image.objects.filter(pk=image.pk).update(
            status=Image.Status.READY,
            error="",
            error_detail="",
            error_kind="",
            format=facts.format,
            width=facts.width,
            height=facts.height,
            animated=facts.animated,
            exif=facts.exif,
            processed_at=timezone.now(),
        )
    return True


def _copy_from_twin(image: Image) -> bool | None:
    """An identical file already processed: reuse its facts and rendition files instead of decoding.
    None when there is no usable twin; False when the image was deleted meanwhile."""
    twin = (
        Image.objects.filter(content_hash=image.content_hash, status=Image.Status.READY)
        .exclude(pk=image.pk)
        .prefetch_related("renditions")
        .first()
    )
    if twin is None or not renditions_current(twin):
        return None
    facts = imaging.ImageFacts(
        format=twin.format, width=twin.width, height=twin.height, exif=twin.exif, animated=twin.animated
    )
    rows = [(r.name, r.spec_key, r.file, r.width, r.height, r.byte_size) for r in twin.renditions.all()]
    for row in rows:
        # Referenced by one more row now: restart the files' grace period, as a re-upload does for its original.
        storage.touch(row[2])
    return _save_result(image, facts, rows)


def image_sweep_pending() -> int:
    """Dispatch the images left pending: never dispatched (the broker was down at upload) and older than one
    sweep interval (KILN_PENDING_SWEEP_SECONDS: the upload's own dispatch after commit has happened or
    failed by then), or dispatched longer ago than the redispatch interval (a lost message); returns how
    many."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.KILN_PENDING_REDISPATCH_MINUTES)
    never_dispatched_grace = timedelta(seconds=settings.KILN_PENDING_SWEEP_SECONDS)
    stale = Image.objects.filter(status=Image.Status.PENDING).filter(
        Q(dispatched_at__isnull=True, created_at__lt=now - never_dispatched_grace)
        | Q(dispatched_at__lt=cutoff, created_at__lt=cutoff)
    )
    dispatched = 0
    for image_id, seen in list(stale.values_list("pk", "dispatched_at")):
        # Claimed first, by a conditional UPDATE: two sweeps at once (a beat slot kept in the outbox through
        # an outage and the next one) never dispatch one image twice.
        if not Image.objects.filter(pk=image_id, dispatched_at=seen).update(dispatched_at=now):
            continue
        if not image_dispatch(image_id=image_id):
            Image.objects.filter(pk=image_id, dispatched_at=now).update(dispatched_at=seen)
            break  # the broker is down: every later one would fail the same way
        dispatched += 1
    return dispatched


def images_regenerate(*, image_ids: list[int]) -> int:
    """Queue images again from scratch (operator's action): failed ones become pending first."""
    Image.objects.filter(pk__in=image_ids).update(
        status=Image.Status.PENDING, error="", error_detail="", error_kind="", attempts=0, started_at=None
    )
    transaction.on_commit(lambda: images_dispatch(image_ids=image_ids, force=True), robust=True)
    return len(image_ids)
