"""Rejected inputs: the real imaging code names what was wrong with a file, the service keeps it in
Image.error_kind, and the source thumbnails registers with jobs counts failed images by hour and kind."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.management import call_command

from jobs import rejections
from tests.thumbnails import corpus
from thumbnails import imaging, services
from thumbnails.imaging import Rejection
from thumbnails.models import Image

from .images import jpeg_bytes

KINDS: dict[str, tuple[Callable[[], bytes], Rejection]] = {
    "truncated JPEG": (corpus.truncated_jpeg, Rejection.TRUNCATED),
    "truncated PNG": (corpus.truncated_png, Rejection.TRUNCATED),
    "JPEG with an unreadable header": (corpus.corrupt_jpeg_header, Rejection.CORRUPT),
    "PSD": (corpus.psd_bytes, Rejection.FORMAT),
    "PDF": (corpus.pdf_bytes, Rejection.FORMAT),
    "text named .jpg": (corpus.text_named_jpg, Rejection.NOT_IMAGE),
    "empty file": (corpus.empty, Rejection.NOT_IMAGE),
    "decompression bomb": (corpus.decompression_bomb_png, Rejection.TOO_MANY_PIXELS),
    "huge header, tiny body": (lambda: corpus.png_header_only(20_000, 20_000), Rejection.TOO_MANY_PIXELS),
}


@pytest.mark.parametrize("case", KINDS.keys())
def test_the_imaging_code_names_the_kind_of_every_rejection(case: str) -> None:
    build, kind = KINDS[case]
    with pytest.raises(imaging.ImageRejected) as rejected:
        imaging.render_image(io.BytesIO(build()))
    assert rejected.value.kind == kind


def test_a_file_over_the_byte_limit_is_too_large() -> None:
    with pytest.raises(imaging.ImageRejected) as rejected:
        imaging.render_image(io.BytesIO(corpus.jpeg()), max_bytes=100)
    assert rejected.value.kind == Rejection.TOO_LARGE


# -- through the service, into the database ----------------------------------------------------------------------


def stored(data: bytes, name: str) -> Image:
    return services.image_create(upload=ContentFile(data, name=name), original_name=name)


@pytest.fixture
def lenient_uploads(settings, media_root: Path) -> None:
    # The upload refuses a 64 MP PNG of 60 KB as implausible before any worker sees it; this test wants the
    # worker's own refusal, as when an upload came in before the limits were tightened.
    settings.KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS = 1_000


@pytest.mark.database
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (corpus.truncated_jpeg, Rejection.TRUNCATED),
        (corpus.psd_bytes, Rejection.FORMAT),
        (corpus.text_named_jpg, Rejection.NOT_IMAGE),
        (corpus.decompression_bomb_png, Rejection.TOO_MANY_PIXELS),
    ],
)
def test_a_rejected_upload_fails_its_image_with_the_kind_and_the_time(
    lenient_uploads, build: Callable[[], bytes], kind: Rejection
) -> None:
    image = stored(build(), "upload.jpg")
    assert services.rendition_generate(image_id=image.pk) == Image.Status.FAILED
    image.refresh_from_db()
    assert (image.status, image.error_kind) == (Image.Status.FAILED, kind)
    assert image.error  # the sentence for people is still there
    assert image.processed_at is not None


@pytest.mark.database
@pytest.mark.django_db
def test_an_image_that_needs_too_much_memory_or_keeps_crashing_is_counted_against_the_input(
    media_root: Path, monkeypatch
) -> None:
    hungry, crashing = stored(jpeg_bytes(), "hungry.jpg"), stored(jpeg_bytes(color=(1, 2, 3)), "crash.jpg")

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(imaging, "render_image", out_of_memory)
    services.rendition_generate(image_id=hungry.pk)
    Image.objects.filter(pk=crashing.pk).update(attempts=services.MAX_ATTEMPTS)
    services.rendition_generate(image_id=crashing.pk)
    assert Image.objects.get(pk=hungry.pk).error_kind == Rejection.TOO_MUCH_MEMORY
    assert Image.objects.get(pk=crashing.pk).error_kind == Rejection.CRASHED_WORKER


@pytest.mark.django_db
def test_an_image_over_the_queues_time_limit_is_counted_as_too_slow(media_root: Path, monkeypatch) -> None:
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

    from thumbnails.tasks import rendition_generate_task

    soft, hard = stored(jpeg_bytes(), "slow.jpg"), stored(jpeg_bytes(color=(4, 5, 6)), "killed.jpg")

    def over_the_soft_limit(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "rendition_generate", over_the_soft_limit)
    assert rendition_generate_task.apply(args=[soft.pk]).get() == "failed"
    # The hard limit kills the pool process; the worker's main process reports it through on_failure.
    rendition_generate_task.on_failure(TimeLimitExceeded(120), "task-id", [hard.pk], {}, None)
    for image in (soft, hard):
        image.refresh_from_db()
        assert (image.status, image.error_kind) == (Image.Status.FAILED, Rejection.TOO_SLOW)
        assert "took longer than" in image.error


@pytest.mark.database
@pytest.mark.django_db
def test_a_failure_of_kilns_own_making_has_no_kind(media_root: Path) -> None:
    image = stored(jpeg_bytes(), "photo.jpg")
    services.image_mark_failed(image_id=image.pk, reason="could not be processed", detail="OSError: EIO")
    assert Image.objects.get(pk=image.pk).error_kind == ""


# -- counted for operators ---------------------------------------------------------------------------------------


def rejected_at(moment: datetime, build: Callable[[], bytes], name: str) -> Image:
    with time_machine.travel(moment, tick=False):
        image = stored(build(), name)
        services.rendition_generate(image_id=image.pk)
    return image


@pytest.mark.database
@pytest.mark.django_db
def test_the_registered_source_counts_rejections_by_clock_hour_and_kind_as_they_happened(
    media_root: Path,
) -> None:
    now = datetime(2026, 12, 4, 11, 30, tzinfo=UTC)
    rejected_at(now - timedelta(minutes=80), corpus.psd_bytes, "a.psd")  # 10:10
    deleted = rejected_at(now - timedelta(minutes=40), corpus.text_named_jpg, "b.jpg")  # 10:50
    rejected_at(now - timedelta(minutes=20), corpus.truncated_jpeg, "c.jpg")  # 11:10
    twice = rejected_at(now - timedelta(minutes=10), corpus.truncated_png, "d.png")  # 11:20
    regenerated = rejected_at(now - timedelta(minutes=5), corpus.eps_bytes, "e.eps")  # 11:25
    # What happened stays counted: the uploader deletes one, staff retry another (pending again).
    deleted.delete()
    services.images_regenerate(image_ids=[regenerated.pk])
    # A second delivery of the same job fails the image again: one rejection, not two.
    services.image_mark_failed(image_id=twice.pk, reason="the file is cut short", kind=Rejection.TRUNCATED)
    ours = stored(jpeg_bytes(), "f.jpg")
    services.image_mark_failed(image_id=ours.pk, reason="the file store was unavailable")  # no kind
    with time_machine.travel(now, tick=False):
        services.rendition_generate(image_id=stored(jpeg_bytes(color=(9, 9, 9)), "g.jpg").pk)  # ready

    found = rejections.rejections_read(now)

    assert found.last_hour == {"format": 1, "not_image": 1, "truncated": 2}
    by_hour = {hour.label: hour.by_kind for hour in found.hours if hour.total}
    assert by_hour == {"10:00": {"format": 1, "not_image": 1}, "11:00": {"format": 1, "truncated": 2}}
    assert set(found.kinds) == {str(kind) for kind in Rejection}


@pytest.mark.database
@pytest.mark.django_db
def test_jobs_status_shows_the_rejected_uploads_and_no_failed_job(media_root: Path) -> None:
    for build, name in (
        (corpus.psd_bytes, "a.psd"),
        (corpus.truncated_jpeg, "b.jpg"),
        (corpus.psd_bytes, "c"),
    ):
        services.rendition_generate(image_id=stored(build(), name).pk)
    out = StringIO()
    call_command(
        "jobs", "status", stdout=out
    )  # the broker is unreachable in unit tests: the rest still shows
    assert "failed      0\n" in out.getvalue()
    assert "rejected    3 inputs in the last hour (format 2, truncated 1), 3 in 24 h" in out.getvalue()


@pytest.mark.parametrize(
    ("kind", "helps"),
    [
        (Rejection.FORMAT, False),
        (Rejection.NOT_IMAGE, False),
        (Rejection.TRUNCATED, False),
        (Rejection.CORRUPT, False),
        (Rejection.TOO_MANY_PIXELS, True),  # an operator may raise the limit
        (Rejection.TOO_SLOW, True),
        ("", True),  # Kiln's own failure: storage, database
    ],
)
def test_a_retry_is_offered_only_where_the_same_bytes_could_succeed(kind: str, helps: bool) -> None:
    assert Image(status=Image.Status.FAILED, error_kind=kind).retry_may_help is helps
    assert Image(status=Image.Status.READY).retry_may_help is False
