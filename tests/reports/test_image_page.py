from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from PIL import TiffImagePlugin

from reports import services
from reports.models import Report, ReportImage
from tests.reports.factories import also_in, person, upload
from tests.thumbnails import corpus
from thumbnails.facts import camera_words, file_facts, photo_facts
from thumbnails.models import Image

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def page_of(client: Client, report: Report, image: Image):
    return client.get(f"/reports/{report.pk}/images/{image.pk}/")


def camera_jpeg() -> bytes:
    exif = corpus.camera_exif()
    exif.get_ifd(0x8769)[0x829D] = TiffImagePlugin.IFDRational(28, 10)  # FNumber
    return corpus.jpeg(corpus.flat((120, 140, 160), size=(300, 200)), exif=exif)


def test_the_page_shows_the_preview_and_what_the_camera_recorded_in_words(client: Client, media_root) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    image = upload(report, data=camera_jpeg(), name="IMG_0001.JPG", uploaded_by=owner)
    client.force_login(owner)

    response = page_of(client, report, image)

    assert response.status_code == 200
    preview = image.rendition_map["preview"]
    html = response.content.decode()
    assert f'<img src="/media/{preview.file}" width="300" height="200" alt="IMG_0001.JPG">' in html
    assert response.context["photo_facts"] == [
        ("Camera", "Canon EOS R5"),
        ("Lens", "RF24-70mm F2.8 L IS USM"),
        ("Exposure", "1/250 s"),
        ("Aperture", "f/2.8"),
        ("ISO", "ISO 400"),
        ("Focal length", "50 mm"),
        ("Taken", "1 May 2024, 12:34"),
        ("GPS position", "recorded"),
    ]
    assert '<th scope="row">Aperture</th><td>f/2.8</td>' in html
    assert '<th scope="row">Dimensions</th><td>300 × 200</td>' in html
    assert '<th scope="row">Uploaded by</th><td>grace</td>' in html
    assert f'href="/reports/{report.pk}/"' in html  # the way back


def test_facts_nobody_recorded_are_left_out_and_a_photo_without_a_position_says_none() -> None:
    image = Image(status=Image.Status.READY, exif={"iso": 100, "exposure": "2.5"})
    assert photo_facts(image) == [("Exposure", "2.5 s"), ("ISO", "ISO 100"), ("GPS position", "none")]


def test_facts_of_the_wrong_type_are_left_out_rather_than_failing_the_page() -> None:
    image = Image(
        status=Image.Status.READY,
        exif={"make": 7, "iso": "fast", "aperture": True, "taken_at": "yesterday", "focal_length": [35]},
    )
    assert photo_facts(image) == [("GPS position", "none")]


def test_the_time_taken_keeps_the_cameras_clock_and_names_its_utc_offset() -> None:
    image = Image(status=Image.Status.READY, exif={"taken_at": "2024-05-01T18:04:09+02:00"})
    assert ("Taken", "1 May 2024, 18:04 (UTC+02:00)") in photo_facts(image)


@pytest.mark.parametrize(
    ("make", "model", "words"),
    [
        ("Canon", "Canon EOS R5", "Canon EOS R5"),
        ("NIKON CORPORATION", "NIKON D850", "NIKON D850"),
        ("SONY", "ILCE-7M3", "SONY ILCE-7M3"),
        ("Apple", None, "Apple"),
        (None, "X100V", "X100V"),
        (None, None, None),
    ],
)
def test_the_camera_is_named_without_saying_its_maker_twice(
    make: str | None, model: str | None, words: str | None
) -> None:
    assert camera_words(make, model) == words


def test_file_facts_read_like_a_person_would_say_them(settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    image = Image(
        status=Image.Status.READY,
        original_name="DSC_4211.JPG",
        width=6000,
        height=4000,
        byte_size=13_002_342,
        format="JPEG",
        created_at=datetime(2024, 11, 3, 8, 5, tzinfo=UTC),
    )
    assert file_facts(image) == [
        ("Original name", "DSC_4211.JPG"),
        ("Dimensions", "6,000 × 4,000"),
        ("File size", "12.4 MB"),
        ("Format", "JPEG"),
        ("Uploaded", "3 Nov 2024, 09:05"),  # in the site's time zone
    ]


def test_previous_and_next_follow_the_order_of_the_report_page(client: Client, media_root) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    # Uploaded in one order, added to the report in another: the page goes by when they were added.
    third, first, second = (upload(report, name=f"{n}.jpg", process=False) for n in ("c", "a", "b"))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for minutes, image in enumerate((first, second, third)):
        ReportImage.objects.filter(report=report, image=image).update(
            added_at=start + timedelta(minutes=minutes)
        )
    assert services.report_render(report=report, user=owner) == [first, second, third]
    client.force_login(owner)

    middle = page_of(client, report, second).content.decode()
    assert f'href="/reports/{report.pk}/images/{first.pk}/" rel="prev"' in middle
    assert f'href="/reports/{report.pk}/images/{third.pk}/" rel="next"' in middle
    assert "2 of 3" in middle
    start_page = page_of(client, report, first).content.decode()
    assert 'rel="prev"' not in start_page
    assert f'href="/reports/{report.pk}/images/{second.pk}/" rel="next"' in start_page
    assert 'rel="next"' not in page_of(client, report, third).content.decode()


def test_a_waiting_image_says_so_and_a_failed_one_gives_its_reason_but_never_the_detail(
    client: Client, media_root
) -> None:
    owner = person("grace")
    report = Report.objects.create(name="Roof", owner=owner)
    waiting = upload(report, process=False)
    failed = upload(report, data=b"not a photograph\n" * 10, name="notes.jpg", process=False)
    Image.objects.filter(pk=failed.pk).update(
        status=Image.Status.FAILED, error="not an image", error_detail="OSError: /srv/media/originals/ab/cd"
    )
    client.force_login(owner)

    waiting_page = page_of(client, report, waiting).content.decode()
    assert "Waiting to be processed" in waiting_page
    assert "<img" not in waiting_page
    failed_page = page_of(client, report, failed).content.decode()
    assert "This image could not be processed: not an image" in failed_page
    assert "/srv/media" not in failed_page


def test_an_image_is_seen_only_through_a_report_that_holds_it_and_the_user_sees(
    client: Client, media_root
) -> None:
    owner, stranger = person("grace"), person("mallory")
    roof = Report.objects.create(name="Roof", owner=owner)
    garden = Report.objects.create(name="Garden", owner=owner)
    image = upload(roof, process=False)

    assert page_of(client, roof, image).status_code == 302  # to the login page
    client.force_login(stranger)
    assert page_of(client, roof, image).status_code == 404  # not "forbidden": not theirs to learn of
    client.force_login(owner)
    assert page_of(client, garden, image).status_code == 404
    also_in(garden, image)
    assert page_of(client, garden, image).status_code == 200


def test_the_delete_link_is_there_only_for_those_who_may_delete(client: Client, media_root) -> None:
    team = Group.objects.create(name="team")
    owner, member = person("grace", groups=(team,)), person("ada", groups=(team,))
    report = Report.objects.create(name="Roof", owner=owner)
    report.shared_with.add(team)
    owners_image = upload(report, uploaded_by=owner, process=False)
    members_image = upload(report, data=camera_jpeg(), uploaded_by=member, process=False)
    delete_link = 'id="delete"'

    client.force_login(member)
    assert delete_link in page_of(client, report, members_image).content.decode()
    assert delete_link not in page_of(client, report, owners_image).content.decode()
    client.force_login(owner)
    assert delete_link in page_of(client, report, members_image).content.decode()
