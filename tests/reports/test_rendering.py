from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from reports.models import Report, ReportHistoryRecord
from tests.thumbnails.images import jpeg_bytes
from thumbnails import services, tasks
from thumbnails.models import Image

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_user("grace", password="pw-for-tests-only"))
    return client


def grace():
    return get_user_model().objects.get(username="grace")


@pytest.fixture
def sent(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(
        tasks.rendition_generate_task, "apply_async", lambda args, kwargs=None, **kw: calls.append(args[0])
    )
    return calls


def add_image(report: Report, color: tuple[int, int, int]) -> Image:
    return services.image_create(
        upload=ContentFile(jpeg_bytes(color=color), name="p.jpg"),
        original_name="p.jpg",
        owners={"report": str(report.pk)},
    )


def test_rendering_records_who_looked_and_dispatches_only_images_without_current_renditions(
    browser: Client, media_root, sent: list
) -> None:
    report = Report.objects.create(name="Roof", owner=grace())
    ready = add_image(report, (10, 10, 10))
    services.rendition_generate(image_id=ready.pk)
    never_sent = add_image(report, (20, 20, 20))
    failed = add_image(report, (30, 30, 30))
    Image.objects.filter(pk=never_sent.pk).update(dispatched_at=None)
    Image.objects.filter(pk=failed.pk).update(
        status=Image.Status.FAILED, error="bad file", dispatched_at=None
    )
    sent.clear()

    response = browser.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    assert sent == [never_sent.pk]
    record = ReportHistoryRecord.objects.get()
    assert (record.report, record.rendered_by.username) == (report, "grace")
    html = response.content.decode()
    # This test process has no broker: the waiting tile says so instead of "processing…".
    assert "waiting: the job queue is unreachable" in html
    assert "processing…" not in html
    assert "bad file" in html
    assert '<p class="counts" id="report-counts">1 ready · 1 failed · 1 waiting</p>' in html
    assert 'data-status="ready"' in html


def test_a_rendition_file_gone_from_storage_is_made_again_on_render(
    browser: Client, media_root, sent: list
) -> None:
    report = Report.objects.create(name="Garden", owner=grace())
    image = add_image(report, (40, 40, 40))
    services.rendition_generate(image_id=image.pk)
    (media_root / image.rendition_map["thumb"].file).unlink()
    Image.objects.filter(pk=image.pk).update(dispatched_at=None)
    sent.clear()
    browser.get(f"/reports/{report.pk}/")
    assert sent == [image.pk]


def test_the_upload_form_takes_several_files_and_says_which_were_refused(
    browser: Client, media_root, sent
) -> None:
    report = Report.objects.create(name="Kitchen", owner=grace())
    files = [ContentFile(jpeg_bytes(), name="one.jpg"), ContentFile(b"", name="empty.jpg")]
    response = browser.post(f"/reports/{report.pk}/upload/", {"files": files}, follow=True)
    assert report.images.count() == 1
    assert "empty.jpg: the file is empty" in response.content.decode()


def test_reports_need_a_login(client: Client) -> None:
    response = client.get("/reports/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_reports_list_shows_counts_and_a_cover_and_pages_through_many(
    browser: Client, media_root, sent: list
) -> None:
    roof = Report.objects.create(name="Roof", owner=grace())
    ready = add_image(roof, (10, 10, 10))
    services.rendition_generate(image_id=ready.pk)
    add_image(roof, (20, 20, 20))
    for n in range(30):
        Report.objects.create(
            name=f"Old {n}", owner=grace(), created_at=timezone.now() - timedelta(days=n + 1)
        )

    first = browser.get("/reports/").content.decode()
    assert "2 images · 1 ready · 1 waiting" in first
    thumb = ready.renditions.get(name="thumb")
    assert f'<img src="/media/{thumb.file}" alt="">' in first
    assert "page 1 of 2" in first and "Old 23" in first and "Old 24" not in first  # noqa: PT018
    second = browser.get("/reports/?page=2").content.decode()
    assert "Old 24" in second and "Old 29" in second and "Roof" not in second  # noqa: PT018
    for hostile in ("x", "0", "-1", "99999999999999999999"):
        assert browser.get(f"/reports/?page={hostile}").status_code == 200


def test_staff_retry_a_failed_tile_and_nobody_else_can(
    browser: Client, media_root, sent: list, django_user_model
) -> None:
    report = Report.objects.create(name="Porch", owner=grace())
    failed = add_image(report, (40, 40, 40))
    Image.objects.filter(pk=failed.pk).update(
        status=Image.Status.FAILED, error="bad file", error_detail="OSError"
    )
    url = f"/reports/{report.pk}/images/{failed.pk}/retry/"
    assert 'class="retry"' not in browser.get(f"/reports/{report.pk}/").content.decode()
    assert browser.post(url).status_code == 403  # the owner, but not staff with the permission

    clerk = django_user_model.objects.create_superuser("clerk", "clerk@example.com", "pw")
    staff = Client()
    staff.force_login(clerk)
    assert 'class="retry"' in staff.get(f"/reports/{report.pk}/").content.decode()
    sent.clear()
    page = staff.post(url, follow=True).content.decode()
    assert "p.jpg is being processed again." in page
    failed.refresh_from_db()
    assert (failed.status, failed.error, failed.error_detail, failed.attempts) == ("pending", "", "", 0)
    assert sent == [failed.pk]
