"""Uploads and renditions on an S3 bucket (a real SeaweedFS server): content-addressed keys under the prefix,
signed rendition URLs that a client can fetch, a twin restarting its files' grace period, and a store that is
down answering 503 with nothing stored."""

from __future__ import annotations

import time
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import ApiToken
from mediastore import store
from tests.support.processes import free_port
from tests.support.s3 import media_settings_use
from thumbnails import services
from thumbnails.models import Image
from thumbnails.tasks import TRANSIENT_ERRORS

from .images import jpeg_bytes

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bearer() -> dict[str, str]:
    user = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user)[1]}"}


def photo(seed: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile("photo.jpg", jpeg_bytes(color=(seed, 80, 160)), content_type="image/jpeg")


def test_an_upload_and_its_renditions_live_in_the_bucket_and_are_served_by_signed_urls(
    client: Client, bearer, s3_media
) -> None:
    response = client.post("/api/images/", {"file": photo()}, **bearer)
    assert response.status_code == 202
    image = Image.objects.get(pk=response.json()["id"])
    assert s3_media.keys(s3_media.prefix + "/") == [f"{s3_media.prefix}/{image.original}"]

    assert services.rendition_generate(image_id=image.pk) == Image.Status.READY
    ready = client.get(f"/api/images/{image.pk}/", **bearer).json()
    thumb = ready["renditions"]["thumb"]
    assert thumb["url"].startswith(f"{s3_media.endpoint}/{s3_media.bucket}/{s3_media.prefix}/renditions/")
    assert "X-Amz-Signature=" in thumb["url"]
    with urllib.request.urlopen(thumb["url"], timeout=10) as answer:
        assert answer.headers["Content-Type"] in {"image/webp", "image/jpeg"}
        assert len(answer.read()) == thumb["bytes"]
    # The original is stored but never given a URL.
    assert "original" not in str(ready).replace("original_name", "")


def test_a_twin_upload_restarts_the_grace_period_of_the_files_it_reuses(
    client: Client, bearer, s3_media
) -> None:
    first = client.post("/api/images/", {"file": photo(7)}, **bearer).json()["id"]
    services.rendition_generate(image_id=first)
    files = [
        Image.objects.get(pk=first).original,
        *Image.objects.get(pk=first).renditions.values_list("file", flat=True),
    ]
    before = {name: default_storage.get_modified_time(name) for name in files}
    time.sleep(1.1)  # LastModified counts whole seconds
    twin = client.post("/api/images/", {"file": photo(7)}, **bearer).json()["id"]
    assert services.rendition_generate(image_id=twin) == Image.Status.READY
    after = {name: default_storage.get_modified_time(name) for name in files}
    assert all(after[name] > before[name] for name in files), (before, after)
    assert len(s3_media.keys(s3_media.prefix + "/")) == 3  # one original, two renditions: stored once


def test_a_store_that_is_down_gets_a_503_and_nothing_is_stored(
    client: Client, bearer, s3_media, settings
) -> None:
    down = f"s3://{s3_media.bucket}/{s3_media.prefix}?endpoint=http://127.0.0.1:{free_port()}"
    media_settings_use(settings, s3_media.environment(), url=down)
    response = client.post("/api/images/", {"file": photo()}, **bearer)
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json()["error"] == (
        "the file store is unavailable right now; nothing was saved, please try again in a minute"
    )
    assert not Image.objects.exists()
    assert s3_media.keys(s3_media.prefix + "/") == []


def test_a_rendition_job_meets_a_store_that_is_down_as_a_transient_error(
    client: Client, bearer, s3_media, settings
):
    image_id = client.post("/api/images/", {"file": photo()}, **bearer).json()["id"]
    down = f"s3://{s3_media.bucket}/{s3_media.prefix}?endpoint=http://127.0.0.1:{free_port()}"
    media_settings_use(settings, s3_media.environment(), url=down)
    with pytest.raises(TRANSIENT_ERRORS) as raised:
        services.rendition_generate(image_id=image_id)
    assert isinstance(raised.value, store.StorageUnavailable)
    assert "is unreachable" in str(raised.value)
    assert Image.objects.get(pk=image_id).status == Image.Status.PENDING  # the task retries it
