from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from thumbnails import imaging, services, tasks
from thumbnails.models import Image
from thumbnails.storage import original_name

from .images import jpeg_bytes

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def upload(data: bytes, name: str = "photo.jpg") -> Image:
    return services.image_create(upload=ContentFile(data, name=name), original_name=name)


def test_an_upload_is_stored_at_its_content_address_and_stays_pending_while_the_broker_is_down(
    media_root: Path,
) -> None:
    data = jpeg_bytes()
    image = upload(data)
    image.refresh_from_db()
    assert image.status == Image.Status.PENDING
    assert image.dispatched_at is None, "the broker is unreachable in unit tests: nothing was dispatched"
    assert (media_root / original_name(image.content_hash)).read_bytes() == data


def test_an_empty_or_oversized_upload_is_refused_before_anything_is_stored(
    settings, media_root: Path
) -> None:
    with pytest.raises(services.UploadRejected, match="empty"):
        upload(b"")
    settings.KILN_UPLOAD_MAX_MB = 1
    settings.KILN_UPLOAD_MAX_BYTES = 1024 * 1024
    with pytest.raises(services.UploadRejected, match=r"the file is 2\.0 MB; the limit is 1 MB") as caught:
        upload(b"x" * 2 * 1024 * 1024)
    assert caught.value.status == 413
    assert not Image.objects.exists()
    assert not (media_root / "originals").exists()


def test_rendition_generate_makes_both_renditions_and_the_image_facts(media_root: Path) -> None:
    image = upload(jpeg_bytes(3000, 2000))
    assert services.rendition_generate(image_id=image.pk) == Image.Status.READY
    image.refresh_from_db()
    assert (image.status, image.format, image.width, image.height) == (Image.Status.READY, "JPEG", 3000, 2000)
    renditions = image.rendition_map
    assert (renditions["preview"].width, renditions["preview"].height) == (2048, 1365)
    assert max(renditions["thumb"].width, renditions["thumb"].height) == 400
    for rendition in renditions.values():
        assert (media_root / rendition.file).stat().st_size == rendition.byte_size


def test_running_the_job_again_changes_nothing(media_root: Path) -> None:
    image = upload(jpeg_bytes())
    services.rendition_generate(image_id=image.pk)
    files = {r.file: os.stat(media_root / r.file).st_mtime_ns for r in image.renditions.all()}
    assert services.rendition_generate(image_id=image.pk) == Image.Status.READY
    assert {r.file: os.stat(media_root / r.file).st_mtime_ns for r in image.renditions.all()} == files
    assert image.renditions.count() == 2


def test_a_forced_run_rewrites_the_same_files_in_place(media_root: Path) -> None:
    image = upload(jpeg_bytes())
    services.rendition_generate(image_id=image.pk)
    before = {r.name: (r.file, (media_root / r.file).read_bytes()) for r in image.renditions.all()}
    services.rendition_generate(image_id=image.pk, force=True)
    after = {r.name: (r.file, (media_root / r.file).read_bytes()) for r in image.renditions.all()}
    assert after == before
    leftovers = [p for p in media_root.rglob(".tmp-*")]
    assert leftovers == []


def test_an_identical_upload_reuses_the_renditions_without_decoding_again(
    media_root: Path, monkeypatch
) -> None:
    data = jpeg_bytes()
    first = upload(data, "a.jpg")
    services.rendition_generate(image_id=first.pk)

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the identical file was decoded again")

    monkeypatch.setattr(imaging, "render_image", must_not_decode)
    second = upload(data, "b.jpg")
    assert services.rendition_generate(image_id=second.pk) == Image.Status.READY
    assert {r.file for r in second.renditions.all()} == {r.file for r in first.renditions.all()}


def test_a_file_that_is_not_an_image_fails_at_once_with_a_reason(media_root: Path) -> None:
    image = upload(b"just some notes, not a photo\n" * 10, "notes.jpg")
    result = tasks.rendition_generate_task.apply(args=[image.pk])
    assert result.successful()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    assert image.attempts == 1
    assert image.error
    assert not image.renditions.exists()


def test_a_transient_error_retries_after_10_30_60_seconds_then_fails_the_image(
    media_root: Path, monkeypatch
) -> None:
    image = upload(jpeg_bytes())
    calls: list[int] = []
    countdowns: list[int] = []

    def storage_down(*, image_id: int, force: bool = False) -> str:
        calls.append(image_id)
        raise FileNotFoundError(2, "No such file or directory", "/srv/kiln/var/media/originals/d0/d0ad")

    original_retry = tasks.rendition_generate_task.retry

    def spy_retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(services, "rendition_generate", storage_down)
    monkeypatch.setattr(tasks.rendition_generate_task, "retry", spy_retry)
    result = tasks.rendition_generate_task.apply(args=[image.pk])
    assert result.failed()
    assert countdowns == [10, 30, 60]
    assert len(calls) == 4
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    # A sentence for the people who see the image; the path and the exception for staff only.
    assert (
        image.error
        == "could not be processed: the file store was unavailable on 4 attempts (staff can retry it)"
    )
    assert (
        image.error_detail
        == "FileNotFoundError: [Errno 2] No such file or directory: '/srv/kiln/var/media/originals/d0/d0ad'"
    )


def test_the_sweep_dispatches_only_images_pending_too_long(media_root: Path, monkeypatch) -> None:
    sent: list[list] = []
    monkeypatch.setattr(
        tasks.rendition_generate_task,
        "apply_async",
        lambda args, kwargs=None, **options: sent.append(list(args)),
    )
    old = timezone.now() - timedelta(minutes=30)
    stuck = upload(jpeg_bytes(color=(1, 2, 3)), "stuck.jpg")
    fresh = upload(jpeg_bytes(color=(4, 5, 6)), "fresh.jpg")
    done = upload(jpeg_bytes(color=(7, 8, 9)), "done.jpg")
    Image.objects.filter(pk__in=[stuck.pk, done.pk]).update(created_at=old, dispatched_at=old)
    Image.objects.filter(pk=done.pk).update(status=Image.Status.READY)
    sent.clear()

    assert services.image_sweep_pending() == 1
    assert sent == [[stuck.pk]]
    assert Image.objects.get(pk=stuck.pk).dispatched_at > old
    assert fresh.pk not in [args[0] for args in sent]


def test_the_sweep_sends_an_image_whose_dispatch_never_got_through_after_a_minute(
    media_root: Path, monkeypatch
) -> None:
    sent: list[list] = []
    monkeypatch.setattr(
        tasks.rendition_generate_task,
        "apply_async",
        lambda args, kwargs=None, **options: sent.append(list(args)),
    )
    image = upload(jpeg_bytes(color=(9, 9, 9)), "broker-down.jpg")
    Image.objects.filter(pk=image.pk).update(
        dispatched_at=None, created_at=timezone.now() - timedelta(seconds=30)
    )
    sent.clear()
    assert services.image_sweep_pending() == 0, "within the grace its own dispatch may still be on its way"
    Image.objects.filter(pk=image.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    assert services.image_sweep_pending() == 1
    assert sent == [[image.pk]]


def test_regenerating_a_failed_image_makes_it_pending_and_queues_a_forced_job(
    media_root: Path, monkeypatch
) -> None:
    sent: list[tuple] = []
    monkeypatch.setattr(
        tasks.rendition_generate_task,
        "apply_async",
        lambda args, kwargs=None, **options: sent.append((list(args), kwargs)),
    )
    image = upload(jpeg_bytes())
    Image.objects.filter(pk=image.pk).update(status=Image.Status.FAILED, error="boom")
    sent.clear()
    assert services.images_regenerate(image_ids=[image.pk]) == 1
    image.refresh_from_db()
    assert (image.status, image.error) == (Image.Status.PENDING, "")
    assert sent == [([image.pk], {"force": True})]


def test_a_job_that_keeps_crashing_or_timing_out_is_parked_after_six_attempts(media_root: Path) -> None:
    image = upload(jpeg_bytes())
    Image.objects.filter(pk=image.pk).update(attempts=services.MAX_ATTEMPTS)
    assert services.rendition_generate(image_id=image.pk) == Image.Status.FAILED
    image.refresh_from_db()
    assert image.error == "gave up after 6 attempts: processing crashed the worker or timed out"
    services.images_regenerate(image_ids=[image.pk])
    assert Image.objects.get(pk=image.pk).attempts == 0, "an operator's regenerate starts the count again"


def test_a_late_failure_never_overwrites_a_finished_image(media_root: Path) -> None:
    image = upload(jpeg_bytes())
    services.rendition_generate(image_id=image.pk)
    services.image_mark_failed(image_id=image.pk, reason="a slower copy of the job timed out")
    assert Image.objects.get(pk=image.pk).status == Image.Status.READY


def test_a_forced_run_decodes_again(media_root: Path, monkeypatch) -> None:
    image = upload(jpeg_bytes())
    services.rendition_generate(image_id=image.pk)
    decoded: list[int] = []
    real = imaging.render_image
    monkeypatch.setattr(imaging, "render_image", lambda *a, **k: decoded.append(1) or real(*a, **k))
    services.rendition_generate(image_id=image.pk)
    assert decoded == []
    services.rendition_generate(image_id=image.pk, force=True)
    assert decoded == [1]


def test_dispatching_many_stops_at_the_first_broker_failure(media_root: Path, monkeypatch) -> None:
    from kombu.exceptions import OperationalError

    attempts: list[int] = []

    def broker_down(args, kwargs=None, **options):
        attempts.append(args[0])
        raise OperationalError("connection refused")

    images = [upload(jpeg_bytes(color=(n, 0, 0)), f"{n}.jpg") for n in range(3)]
    monkeypatch.setattr(tasks.rendition_generate_task, "apply_async", broker_down)
    assert services.images_dispatch(image_ids=[i.pk for i in images]) == 0
    assert attempts == [images[0].pk]


def test_exif_text_with_nul_bytes_is_stored_on_every_database(media_root: Path) -> None:
    import io

    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x010F] = "Ca\x00non"  # Make
    exif[0x0110] = "EOS\x00 R5\x00"  # Model
    out = io.BytesIO()
    PILImage.new("RGB", (64, 48), (10, 120, 200)).save(out, "JPEG", exif=exif)
    image = upload(out.getvalue())
    assert services.rendition_generate(image_id=image.pk) == Image.Status.READY
    image.refresh_from_db()
    assert (image.exif["make"], image.exif["model"]) == ("Canon", "EOS R5")
