from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client

from reports.models import PrintTask, Report
from thumbnails import services, tasks
from thumbnails.models import Image

from .images import jpeg_bytes

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(
        get_user_model().objects.create_superuser("root", "root@localhost", "pw-for-tests-only")
    )
    return client


def test_the_image_admin_shows_status_error_exif_and_renditions(admin_client: Client, media_root) -> None:
    image = services.image_create(upload=ContentFile(jpeg_bytes(), name="a.jpg"), original_name="a.jpg")
    services.rendition_generate(image_id=image.pk)
    listing = admin_client.get("/admin/thumbnails/image/")
    assert listing.status_code == 200
    assert "a.jpg" in listing.content.decode()
    page = admin_client.get(f"/admin/thumbnails/image/{image.pk}/change/").content.decode()
    assert "/media/renditions/" in page
    assert "preview" in page


def test_the_retry_failed_action_queues_only_failed_images(
    admin_client: Client, media_root, monkeypatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(
        tasks.rendition_generate_task, "apply_async", lambda args, kwargs=None, **kw: sent.append(args[0])
    )
    ok = services.image_create(
        upload=ContentFile(jpeg_bytes(color=(1, 1, 1)), name="ok.jpg"), original_name="ok.jpg"
    )
    bad = services.image_create(upload=ContentFile(b"junk" * 10, name="bad.jpg"), original_name="bad.jpg")
    Image.objects.filter(pk=bad.pk).update(status=Image.Status.FAILED, error="not an image")
    sent.clear()
    response = admin_client.post(
        "/admin/thumbnails/image/",
        {"action": "retry_failed", "_selected_action": [ok.pk, bad.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert sent == [bad.pk]
    assert Image.objects.get(pk=bad.pk).status == Image.Status.PENDING


def test_print_tasks_have_an_admin(admin_client: Client) -> None:
    report = Report.objects.create(name="R")
    PrintTask.objects.create(report=report, status=PrintTask.Status.COMPLETED)
    page = admin_client.get("/admin/reports/printtask/").content.decode()
    assert "completed" in page
