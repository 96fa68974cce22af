"""Uploads cannot be abused cheaply: implausible files are refused at upload, and each user has limits per
minute (uploads) and per hour (bytes, megapixels) answered with 429 and Retry-After."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage

from accounts.models import ApiToken
from tests.thumbnails.images import jpeg_bytes
from thumbnails.models import Image

pytestmark = [pytest.mark.database, pytest.mark.django_db]


@pytest.fixture
def limits(settings, media_root):
    settings.KILN_UPLOADS_PER_MINUTE = 100
    settings.KILN_UPLOAD_MB_PER_HOUR = 100
    settings.KILN_UPLOAD_MEGAPIXELS_PER_HOUR = 1000
    return settings


def api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user)[1]}")


def send(client: Client, data: bytes, name: str = "p.jpg"):
    return client.post("/api/images/", {"file": SimpleUploadedFile(name, data)})


def test_a_49_megapixel_png_of_150_kb_is_refused_before_anything_is_stored(limits, django_user_model) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (7000, 7000), (90, 140, 200)).save(buffer, "PNG", compress_level=9)
    response = send(api(django_user_model.objects.create_user("mallory")), buffer.getvalue(), "flat.png")
    assert response.status_code == 400
    assert "too small to be a photo of that size" in response.json()["error"]
    assert not Image.objects.exists()
    assert not (limits.MEDIA_ROOT / "originals").exists()


def test_uploads_per_minute_answer_429_with_retry_after_for_that_user_only(limits, django_user_model) -> None:
    limits.KILN_UPLOADS_PER_MINUTE = 3
    mallory, victim = (api(django_user_model.objects.create_user(name)) for name in ("mallory", "victor"))
    answers = [send(mallory, jpeg_bytes(color=(n, 0, 0))) for n in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert 1 <= int(answers[3]["Retry-After"]) <= 60
    assert answers[3].json()["error"].startswith("too many uploads: at most 3 a minute; try again in")
    assert send(victim, jpeg_bytes(color=(0, 9, 0))).status_code == 202
    # Operators and bulk-feeding service accounts are exempt.
    admin = api(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    assert {send(admin, jpeg_bytes(color=(0, 0, n))).status_code for n in range(5)} == {202}


def test_bytes_per_hour(limits, django_user_model) -> None:
    limits.KILN_UPLOAD_MB_PER_HOUR = 1
    client = api(django_user_model.objects.create_user("mallory"))
    padded = jpeg_bytes() + bytes(700 * 1024)  # a valid JPEG with a long tail: 700 KB counted
    assert send(client, padded).status_code == 202
    refused = send(client, padded + b"2")
    assert refused.status_code == 429
    assert 3500 <= int(refused["Retry-After"]) <= 3600
    assert "at most 1 MB an hour" in refused.json()["error"]
    assert Image.objects.count() == 1


def test_megapixels_per_hour_counted_from_the_header(limits, django_user_model) -> None:
    limits.KILN_UPLOAD_MEGAPIXELS_PER_HOUR = 10
    client = api(django_user_model.objects.create_user("mallory"))
    photo = jpeg_bytes(3000, 2000)  # 6 MP
    assert send(client, photo).status_code == 202
    refused = send(client, photo + b"2")
    assert refused.status_code == 429
    assert "at most 10 megapixels an hour" in refused.json()["error"]
    assert Image.objects.get().width == 3000  # read from the header at upload, before any worker


def test_the_report_form_says_why_and_stops_at_the_limit(limits, django_user_model) -> None:
    from reports.models import Report

    limits.KILN_UPLOADS_PER_MINUTE = 2
    user = django_user_model.objects.create_user("mallory")
    report = Report.objects.create(name="R", owner=user)
    client = Client()
    client.force_login(user)
    files = [SimpleUploadedFile(f"p{n}.jpg", jpeg_bytes(color=(n, 1, 1))) for n in range(5)]
    page = client.post(f"/reports/{report.pk}/upload/", {"files": files}, follow=True).content.decode()
    assert "p2.jpg: too many uploads: at most 2 a minute" in page
    assert "2 more file(s) not uploaded" in page
    assert report.images.count() == 2
