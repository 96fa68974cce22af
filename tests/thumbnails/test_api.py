from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import ApiToken
from reports.models import Report
from thumbnails import services
from thumbnails.models import Image

from .images import jpeg_bytes

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", password="pw-for-tests-only")


@pytest.fixture
def token(user) -> str:
    return ApiToken.issue(user)[1]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def photo(name: str = "photo.jpg", data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if data is not None else jpeg_bytes(), content_type="image/jpeg")


def test_anonymous_requests_get_401_with_a_bearer_challenge(client: Client) -> None:
    for response in (client.get("/api/images/1/"), client.post("/api/images/", {"file": photo()})):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "authentication required" in response.json()["error"]


def test_a_wrong_token_gets_401(client: Client, token: str) -> None:
    assert client.get("/api/images/", **bearer(token + "x")).status_code == 401


def test_a_script_uploads_with_its_token_and_polls_the_status_url(
    client: Client, token: str, media_root
) -> None:
    response = client.post("/api/images/", {"file": photo()}, **bearer(token))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["status_url"] == f"http://testserver/api/images/{body['id']}/"

    pending = client.get(body["status_url"], **bearer(token)).json()
    assert (pending["status"], pending["renditions"]) == ("pending", {})

    services.rendition_generate(image_id=body["id"])  # what worker-high does
    ready = client.get(body["status_url"], **bearer(token)).json()
    assert ready["status"] == "ready"
    assert (ready["width"], ready["height"], ready["format"], ready["error"]) == (640, 480, "JPEG", None)
    thumb = ready["renditions"]["thumb"]
    assert (thumb["width"], thumb["height"]) == (400, 300)
    assert thumb["url"].startswith("http://testserver/media/renditions/")
    path = Path(media_root) / thumb["url"].removeprefix("http://testserver/media/")
    assert path.stat().st_size == thumb["bytes"]
    assert set(ready["renditions"]) == {"thumb", "preview"}


def test_an_upload_can_name_its_report_by_id_or_by_name(client: Client, user, token: str, media_root) -> None:
    report = Report.objects.create(name="Site visit", owner=user)
    by_id = client.post("/api/images/", {"file": photo("a.jpg"), "report": str(report.pk)}, **bearer(token))
    by_name = client.post("/api/images/", {"file": photo("b.jpg"), "report": "New report"}, **bearer(token))
    assert by_id.status_code == by_name.status_code == 202
    assert list(report.images.values_list("pk", flat=True)) == [by_id.json()["id"]]
    assert Report.objects.get(name="New report").images.get().pk == by_name.json()["id"]

    missing = client.post("/api/images/", {"file": photo("c.jpg"), "report": "99999"}, **bearer(token))
    assert missing.status_code == 404
    assert missing.json()["error"] == "no report with id 99999"
    assert Report.objects.get(name="New report").owner == user


def test_an_oversized_upload_gets_413_and_nothing_is_stored(
    client: Client, token: str, settings, media_root
) -> None:
    settings.KILN_UPLOAD_MAX_MB = 1
    settings.KILN_UPLOAD_MAX_BYTES = 1024 * 1024
    response = client.post("/api/images/", {"file": photo(data=b"\xff" * 1_200_000)}, **bearer(token))
    assert response.status_code == 413
    assert "limit is 1 MB" in response.json()["error"]
    assert not Image.objects.exists()


def test_a_missing_file_field_is_a_400_that_says_what_to_send(client: Client, token: str) -> None:
    response = client.post("/api/images/", {"picture": photo()}, **bearer(token))
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]


def test_a_browser_session_must_send_the_csrf_token_to_upload(user, media_root) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post("/api/images/", {"file": photo()}).status_code == 403
    assert browser.get("/api/images/?ids=1,2").status_code == 200
    browser.get("/reports/")  # sets the CSRF cookie, as the report page does
    token = browser.cookies["csrftoken"].value
    response = browser.post("/api/images/", {"file": photo()}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202


def test_a_non_bearer_authorization_header_leaves_the_session_alone(user) -> None:
    browser = Client()
    browser.force_login(user)
    # A staging site behind HTTP basic auth: the browser sends this header with every request.
    assert browser.get("/api/images/?ids=1", HTTP_AUTHORIZATION="Basic dXNlcjpwdw==").status_code == 200


def test_a_failed_image_reports_its_reason(client: Client, token: str, media_root) -> None:
    body = client.post(
        "/api/images/", {"file": photo("notes.jpg", b"plain text\n" * 50)}, **bearer(token)
    ).json()
    services.rendition_generate(image_id=body["id"])
    failed = client.get(body["status_url"], **bearer(token)).json()
    assert failed["status"] == "failed"
    assert failed["error"]
    assert failed["renditions"] == {}


def test_the_status_list_returns_the_asked_images(client: Client, token: str, media_root) -> None:
    ids = [
        client.post("/api/images/", {"file": photo(f"{n}.jpg")}, **bearer(token)).json()["id"]
        for n in range(3)
    ]
    body = client.get(f"/api/images/?ids={ids[0]},{ids[2]}", **bearer(token)).json()
    assert sorted(image["id"] for image in body["images"]) == [ids[0], ids[2]]
    assert client.get("/api/images/?ids=1,x", **bearer(token)).status_code == 400


def test_the_list_pages_through_a_reports_images_in_a_stable_order(
    client: Client, user, token: str, media_root, django_user_model
) -> None:
    report = Report.objects.create(name="Survey", owner=user)
    ids = [
        client.post(
            "/api/images/",
            {"file": photo(f"p{n}.jpg", jpeg_bytes(color=(n, 2, 3))), "report": str(report.pk)},
            **bearer(token),
        ).json()["id"]
        for n in range(5)
    ]
    client.post(
        "/api/images/", {"file": photo("elsewhere.jpg", jpeg_bytes(color=(9, 9, 9)))}, **bearer(token)
    )

    seen, url = [], f"/api/images/?report={report.pk}&limit=2"
    while url:
        page = client.get(url, **bearer(token)).json()
        assert len(page["images"]) <= 2
        seen += [image["id"] for image in page["images"]]
        url = page["next"] and page["next"].removeprefix("http://testserver")
    assert seen == sorted(ids)
    assert len(client.get("/api/images/", **bearer(token)).json()["images"]) == 6  # everything the user sees

    stranger = ApiToken.issue(django_user_model.objects.create_user("eve"))[1]
    hidden = client.get(f"/api/images/?report={report.pk}", **bearer(stranger))
    assert (hidden.status_code, hidden.json()) == (404, {"error": f"no report {report.pk}"})
    assert client.get("/api/images/", **bearer(stranger)).json() == {"images": [], "next": None}
    for bad in ("limit=0", "limit=201", "limit=x", "after=-1"):
        answer = client.get(f"/api/images/?{bad}", **bearer(token))
        assert answer.status_code == 400, bad
