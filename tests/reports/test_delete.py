"""Deleting an image or a whole report: rows now, files later through the purge's file policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from purge import registry
from purge import services as purge
from purge.models import PurgeRun, RetentionPolicy
from reports import services
from reports.models import Report, ReportHistoryRecord
from tests.reports.factories import also_in, person, upload
from tests.thumbnails.images import jpeg_bytes
from thumbnails import imaging
from thumbnails import services as thumbnails
from thumbnails.models import Image, Rendition

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def purge_in_this_process(monkeypatch) -> None:
    """Purge runs are worked on here, by purge_files_now(), not handed to a broker."""
    monkeypatch.setattr(purge, "purge_run_enqueue", lambda **kwargs: None)


def purge_files_now() -> None:
    """A real run of each of the purge's file policies, with a grace period of 0 days."""
    file_targets = [key for key, target in registry.TARGETS.items() if target.kind == "files"]
    policies = list(RetentionPolicy.objects.filter(target__in=file_targets))
    assert policies, "no file policy is installed"
    # A minute on, so the files written by the test are older than the cutoff ("now" minus 0 days).
    with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=True):
        for policy in policies:
            policy.max_age_days = 0
            policy.save()
            run = purge.purge_run_request(policy=policy, dry_run=False, trigger=PurgeRun.Trigger.COMMAND)
            assert purge.purge_run_execute(run_id=run.pk) == purge.RunOutcome.DONE


def files_of(image: Image) -> set[Path]:
    names = [image.original, *(rendition.file for rendition in image.renditions.all())]
    return {Path(settings.MEDIA_ROOT) / name for name in names}


def image_delete_url(report: Report, image: Image) -> str:
    return f"/reports/{report.pk}/images/{image.pk}/delete/"


def report_delete_url(report: Report) -> str:
    return f"/reports/{report.pk}/delete/"


# -- files go through the purge -----------------------------------------------------------------------------


def test_a_deleted_images_files_go_with_the_purge_while_its_twin_in_another_report_keeps_them(
    client: Client, media_root, purge_in_this_process
) -> None:
    owner = person("grace")
    roof, garden = (Report.objects.create(name=name, owner=owner) for name in ("Roof", "Garden"))
    lonely = upload(roof, data=jpeg_bytes(color=(200, 10, 10)))
    twin_data = jpeg_bytes(color=(10, 10, 200))
    twin_here, twin_there = upload(roof, data=twin_data), upload(garden, data=twin_data)
    lonely_files, shared_files = files_of(lonely), files_of(twin_there)
    assert len(lonely_files) == 3  # the original, the thumbnail and the preview
    assert files_of(twin_here) == shared_files  # the same content at the same names
    assert all(path.exists() for path in lonely_files | shared_files)
    client.force_login(owner)

    for image in (lonely, twin_here):
        response = client.post(image_delete_url(roof, image))
        assert (response.status_code, response["Location"]) == (302, f"/reports/{roof.pk}/")
    assert not Image.objects.filter(pk__in=[lonely.pk, twin_here.pk]).exists()
    assert not Rendition.objects.filter(image_id__in=[lonely.pk, twin_here.pk]).exists()
    assert all(path.exists() for path in lonely_files)  # rows only: the files wait for the purge

    purge_files_now()

    assert not any(path.exists() for path in lonely_files)
    assert all(path.exists() for path in shared_files)
    assert thumbnails.renditions_current(Image.objects.get(pk=twin_there.pk))


def test_a_deleted_reports_images_go_and_an_image_another_report_holds_stays_with_its_files(
    client: Client, media_root, purge_in_this_process
) -> None:
    owner = person("grace")
    roof, garden = (Report.objects.create(name=name, owner=owner) for name in ("Roof", "Garden"))
    only_here = upload(roof, data=jpeg_bytes(color=(200, 10, 10)))
    in_both = upload(roof, data=jpeg_bytes(color=(10, 200, 10)))
    also_in(garden, in_both)
    ReportHistoryRecord.objects.create(report=roof)
    client.force_login(owner)

    response = client.post(report_delete_url(roof), follow=True)

    assert response.redirect_chain == [("/reports/", 302)]
    assert "Deleted the report Roof and 1 image." in response.content.decode()
    assert not Report.objects.filter(pk=roof.pk).exists()
    assert not ReportHistoryRecord.objects.exists()
    assert not Image.objects.filter(pk=only_here.pk).exists()
    assert list(garden.images.all()) == [in_both]
    purge_files_now()
    assert not any(path.exists() for path in files_of(only_here))
    assert all(path.exists() for path in files_of(in_both))


def test_a_job_still_queued_for_a_deleted_image_does_nothing(media_root) -> None:
    report = Report.objects.create(name="Roof")
    image = upload(report, process=False)
    services.image_delete(report=report, image=image)

    assert thumbnails.rendition_generate(image_id=image.pk) == "gone"
    assert not (media_root / "renditions").exists()


def render_then_delete(monkeypatch, report: Report, image: Image) -> None:
    """The image is deleted while a worker is decoding it: after its files are made, before its rows."""
    real = imaging.render_image

    def rendering(*args, **kwargs) -> imaging.PipelineResult:
        result = real(*args, **kwargs)
        services.image_delete(report=report, image=image)
        return result

    monkeypatch.setattr(imaging, "render_image", rendering)


def test_a_job_running_as_its_image_is_deleted_leaves_no_rows_and_its_files_go_with_the_purge(
    media_root, monkeypatch, purge_in_this_process
) -> None:
    report = Report.objects.create(name="Roof")
    image = upload(report, process=False)
    render_then_delete(monkeypatch, report, image)

    assert thumbnails.rendition_generate(image_id=image.pk) == "gone"
    assert not Rendition.objects.exists()
    written = {path for path in (media_root / "renditions").rglob("*") if path.is_file()}
    assert len(written) == 2  # the preview and the thumbnail, now referenced by nothing

    purge_files_now()
    assert not any(path.exists() for path in written)
    assert not (media_root / image.original).exists()


def test_a_job_copying_a_twins_files_as_its_image_is_deleted_ends_quietly_as_gone(
    media_root, monkeypatch
) -> None:
    report = Report.objects.create(name="Roof")
    upload(report, name="first.jpg")  # processed: the twin whose files the second upload reuses
    image = upload(report, name="second.jpg", process=False)
    real = thumbnails.renditions_current

    def deleted_meanwhile(twin, *args, **kwargs) -> bool:
        services.image_delete(report=report, image=image)
        return real(twin, *args, **kwargs)

    monkeypatch.setattr(thumbnails, "renditions_current", deleted_meanwhile)
    assert thumbnails.rendition_generate(image_id=image.pk) == "gone"
    assert not Rendition.objects.filter(image_id=image.pk).exists()


def test_deleting_an_empty_report_says_it_held_no_images(client: Client) -> None:
    owner = person("grace")
    empty = Report.objects.create(name="Empty", owner=owner)
    client.force_login(owner)
    response = client.post(report_delete_url(empty), follow=True)
    assert "Deleted the report Empty (it held no images)." in response.content.decode()


# -- asking first ----------------------------------------------------------------------------------------------


def test_asking_to_delete_an_image_shows_what_goes_and_deletes_nothing(client: Client, media_root) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    image = upload(report, name="chimney.jpg")
    client.force_login(owner)

    response = client.get(image_delete_url(report, image))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete chimney.jpg?" in html
    assert f'<form method="post" action="{image_delete_url(report, image)}">' in html
    assert Image.objects.filter(pk=image.pk).exists()


def test_asking_to_delete_a_report_says_how_many_images_go_and_deletes_nothing(
    client: Client, media_root
) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    garden = Report.objects.create(name="Garden", owner=owner)
    upload(report, data=jpeg_bytes(color=(1, 1, 1)), process=False)
    also_in(garden, upload(report, data=jpeg_bytes(color=(2, 2, 2)), process=False))
    client.force_login(owner)

    response = client.get(report_delete_url(report))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete the report Roof?" in html
    assert "It holds 2 images" in html
    assert "One of them is also in another report, which keeps it." in html
    assert report.images.count() == 2


def test_only_get_and_post_are_answered(client: Client, media_root) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    image = upload(report, process=False)
    client.force_login(owner)

    assert client.put(image_delete_url(report, image)).status_code == 405
    assert client.delete(report_delete_url(report)).status_code == 405
    assert Image.objects.filter(pk=image.pk).exists()
    assert Report.objects.filter(pk=report.pk).exists()


def test_an_image_another_report_also_holds_is_only_taken_out_of_this_one(client: Client, media_root) -> None:
    owner = person("grace")
    roof, garden = (Report.objects.create(name=name, owner=owner) for name in ("Roof", "Garden"))
    image = upload(roof, name="chimney.jpg", process=False)
    also_in(garden, image)
    client.force_login(owner)

    response = client.post(image_delete_url(roof, image), follow=True)

    assert "Took chimney.jpg out; another report still holds it." in response.content.decode()
    assert not roof.images.exists()
    assert list(garden.images.all()) == [image]


# -- who may -------------------------------------------------------------------------------------------------


@pytest.fixture
def shared_report(media_root):
    """Grace's report, shared with a team Ada is in; each uploaded an image. Mallory sees none of it."""
    team = Group.objects.create(name="team")
    grace, ada = person("grace", groups=(team,)), person("ada", groups=(team,))
    person("mallory")
    person("root", staff=True)
    report = Report.objects.create(name="Roof", owner=grace)
    report.shared_with.add(team)
    graces = upload(report, data=jpeg_bytes(color=(1, 1, 1)), uploaded_by=grace, process=False)
    adas = upload(report, data=jpeg_bytes(color=(2, 2, 2)), uploaded_by=ada, process=False)
    return report, {"grace": graces, "ada": adas}


@pytest.mark.parametrize(
    ("who", "whose", "status"),
    [
        ("grace", "ada", 302),  # the report's owner
        ("ada", "ada", 302),  # the image's uploader
        ("root", "grace", 302),  # staff
        ("ada", "grace", 403),  # sees the report, but the image is not hers
        ("mallory", "grace", 404),  # sees nothing: not told that it exists
    ],
)
def test_an_image_is_deleted_by_the_reports_owner_its_uploader_or_staff(
    client: Client, shared_report, django_user_model, who: str, whose: str, status: int
) -> None:
    report, images = shared_report
    image = images[whose]
    client.force_login(django_user_model.objects.get(username=who))

    assert client.get(image_delete_url(report, image)).status_code == (200 if status == 302 else status)
    assert client.post(image_delete_url(report, image)).status_code == status
    assert Image.objects.filter(pk=image.pk).exists() is (status != 302)


@pytest.mark.parametrize(
    ("who", "status"),
    [("grace", 302), ("root", 302), ("ada", 403), ("mallory", 404)],
)
def test_a_report_is_deleted_by_its_owner_or_staff(
    client: Client, shared_report, django_user_model, who: str, status: int
) -> None:
    report, _images = shared_report
    client.force_login(django_user_model.objects.get(username=who))

    assert client.get(report_delete_url(report)).status_code == (200 if status == 302 else status)
    assert client.post(report_delete_url(report)).status_code == status
    assert Report.objects.filter(pk=report.pk).exists() is (status != 302)


def test_an_anonymous_visitor_is_sent_to_log_in_and_nothing_is_deleted(client: Client, shared_report) -> None:
    report, images = shared_report
    for url in (image_delete_url(report, images["grace"]), report_delete_url(report)):
        response = client.post(url)
        assert (response.status_code, response["Location"].split("?")[0]) == (302, "/accounts/login/")
    assert Report.objects.filter(pk=report.pk).exists()
    assert report.images.count() == 2
