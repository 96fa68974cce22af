"""Users see only what is theirs: a report's owner, the groups it is shared with and staff see it and its
images; anyone else gets 404 (not 403) on pages and API alike, and cannot upload into it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import ApiToken
from reports.models import Report
from tests.thumbnails.images import jpeg_bytes
from thumbnails import services

pytestmark = [pytest.mark.database, pytest.mark.django_db]


@pytest.fixture
def people(django_user_model, media_root):
    team = Group.objects.create(name="survey-team")
    alice = django_user_model.objects.create_user("alice", password="pw-a")
    bob = django_user_model.objects.create_user("bob", password="pw-b")
    carol = django_user_model.objects.create_user("carol", password="pw-c")
    carol.groups.add(team)
    staff = django_user_model.objects.create_user("sam", password="pw-s", is_staff=True)
    report = Report.objects.create(name="Roof survey", owner=alice)
    report.shared_with.add(team)
    image = services.image_create(
        upload=ContentFile(jpeg_bytes(), name="roof.jpg"),
        original_name="roof.jpg",
        uploaded_by=alice,
        owners={"report": str(report.pk)},
        dispatch=False,
    )
    return {"alice": alice, "bob": bob, "carol": carol, "staff": staff, "report": report, "image": image}


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user)[1]}")


def photo() -> SimpleUploadedFile:
    return SimpleUploadedFile("p.jpg", jpeg_bytes(color=(200, 10, 10)), content_type="image/jpeg")


def test_a_stranger_gets_404_for_another_users_report_and_images_on_pages_and_api(people) -> None:
    report, image = people["report"], people["image"]
    bob = as_user(people["bob"])
    assert bob.get(f"/reports/{report.pk}/").status_code == 404
    assert bob.post(f"/reports/{report.pk}/upload/", {"files": photo()}).status_code == 404
    assert bob.post(f"/reports/{report.pk}/sharing/", {"groups": []}).status_code == 404
    assert "Roof survey" not in bob.get("/reports/").content.decode()

    bob_api = api(people["bob"])
    detail = bob_api.get(f"/api/images/{image.pk}/")
    assert (detail.status_code, detail.json()) == (404, {"error": f"no image {image.pk}"})
    assert bob_api.get(f"/api/images/?ids={image.pk}").json() == {"images": []}
    # An upload naming the report by id is refused as if it did not exist; by name it makes bob's own.
    refused = bob_api.post("/api/images/", {"file": photo(), "report": str(report.pk)})
    assert (refused.status_code, refused.json()["error"]) == (404, f"no report with id {report.pk}")
    assert bob_api.post("/api/images/", {"file": photo(), "report": "Roof survey"}).status_code == 202
    assert report.images.count() == 1
    assert Report.objects.get(name="Roof survey", owner=people["bob"]).images.count() == 1


def test_the_owner_a_group_member_and_staff_see_the_report_and_upload_to_it(people) -> None:
    report, image = people["report"], people["image"]
    for who in ("alice", "carol", "staff"):
        client = as_user(people[who])
        assert client.get(f"/reports/{report.pk}/").status_code == 200, who
        assert "Roof survey" in client.get("/reports/").content.decode(), who
        assert api(people[who]).get(f"/api/images/{image.pk}/").json()["exif"] == image.exif
        assert client.post(f"/reports/{report.pk}/upload/", {"files": photo()}).status_code == 302
    # The same photo three times: an image per upload (twins share their files), all in the report.
    assert report.images.count() == 4


def test_only_the_owner_or_staff_change_who_a_report_is_shared_with(people) -> None:
    report = people["report"]
    assert as_user(people["carol"]).post(f"/reports/{report.pk}/sharing/", {"groups": []}).status_code == 403
    assert list(report.shared_with.values_list("name", flat=True)) == ["survey-team"]
    assert as_user(people["alice"]).post(f"/reports/{report.pk}/sharing/", {}).status_code == 302
    assert not report.shared_with.exists()
    assert as_user(people["carol"]).get(f"/reports/{report.pk}/").status_code == 404
