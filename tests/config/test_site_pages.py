"""The site's own pages: operators' links only for operators, and an icon instead of a 404 on every page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

pytestmark = [pytest.mark.database, pytest.mark.django_db]

OPERATOR_LINKS = ('href="/admin/"', 'href="/admin/jobs/dashboard/"', "flower/")


def page_for(user) -> str:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get("/").content.decode()


def test_admin_jobs_and_flower_links_are_shown_to_operators_only(django_user_model) -> None:
    member = django_user_model.objects.create_user("member")
    staff = django_user_model.objects.create_user("clerk", is_staff=True)
    operator = django_user_model.objects.create_user("operator", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    for user in (None, member):
        page = page_for(user)
        assert not any(link in page for link in OPERATOR_LINKS), page
    clerk = page_for(staff)
    assert 'href="/admin/"' in clerk and "flower/" not in clerk  # noqa: PT018
    assert all(link in page_for(operator) for link in OPERATOR_LINKS)


def test_the_favicon_is_an_icon() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert "max-age" in response["Cache-Control"]
