"""GET /jobs/flower-auth/: what nginx asks Django before it proxies a request to Flower."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from jobs.views import LOGIN_URL_HEADER

pytestmark = pytest.mark.django_db
URL = "/jobs/flower-auth/"


def make_user(username: str, *permissions: str, staff: bool = True, active: bool = True):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=staff, is_active=active)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="jobs", codename__in=permissions)
    )
    return user


def ask(client: Client, method: str = "GET", uri: str = "/flower/") -> int:
    return client.get(URL, headers={"X-Original-Method": method, "X-Original-URI": uri}).status_code


@pytest.fixture
def viewer_client(client: Client) -> Client:
    client.force_login(make_user("viewer", "view_dashboard"))
    return client


def test_anonymous_gets_401_with_the_admin_login_url_carrying_the_original_uri(client: Client) -> None:
    response = client.get(URL, headers={"X-Original-URI": "/flower/tasks?state=FAILURE&limit=5"})
    assert response.status_code == 401
    assert response[LOGIN_URL_HEADER] == "/admin/login/?next=/flower/tasks%3Fstate%3DFAILURE%26limit%3D5"


def test_a_staff_user_with_view_dashboard_may_read_flower(viewer_client: Client) -> None:
    assert ask(viewer_client, "GET") == 204
    assert ask(viewer_client, "HEAD") == 204


def test_a_logged_in_user_without_the_permission_gets_403(client: Client) -> None:
    client.force_login(make_user("staff", staff=True))
    assert ask(client) == 403


def test_the_permission_without_staff_status_is_not_enough(client: Client) -> None:
    client.force_login(make_user("outsider", "view_dashboard", staff=False))
    assert ask(client) == 403


def test_a_superuser_may_do_everything(client: Client) -> None:
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    assert ask(client, "GET") == 204
    assert ask(client, "POST", "/flower/api/worker/shutdown/high@host") == 204


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_viewer_cannot_change_anything(viewer_client: Client, method: str) -> None:
    assert ask(viewer_client, method, "/flower/api/worker/shutdown/high@host") == 403


def test_an_operator_may_change_things(client: Client) -> None:
    client.force_login(make_user("operator", "view_dashboard", "operate_flower"))
    assert ask(client, "POST", "/flower/api/worker/pool/grow/high@host") == 204


def test_operate_flower_alone_does_not_open_flower(client: Client) -> None:
    client.force_login(make_user("operator-only", "operate_flower"))
    assert ask(client, "POST", "/flower/api/worker/pool/grow/high@host") == 403


def test_the_task_list_rows_are_a_read_although_flower_posts_for_them(viewer_client: Client) -> None:
    assert ask(viewer_client, "POST", "/flower/tasks/datatable") == 204
    assert ask(viewer_client, "POST", "/flower/tasks/datatable/../api/task/revoke/x") == 403


def test_the_endpoint_itself_only_answers_safe_methods(viewer_client: Client) -> None:
    assert viewer_client.post(URL).status_code == 405
