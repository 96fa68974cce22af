"""accounts/api.py: the JSON API's front door, for any app's views."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts.api import api_view
from accounts.models import ApiToken

pytestmark = [pytest.mark.database]


@api_view("GET", "POST")
def whoami(request) -> JsonResponse:
    return JsonResponse({"user": request.user.get_username()})


def body(response: JsonResponse) -> dict:
    return json.loads(response.content)


def call(method: str, *, authorization: str = "", user=None, csrf: bool = False) -> JsonResponse:
    from django.contrib.auth.models import AnonymousUser

    factory = RequestFactory(enforce_csrf_checks=True)
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    request = getattr(factory, method.lower())("/api/whoami/", **headers)
    request.user = user or AnonymousUser()
    if csrf:
        token = get_token(request)
        request.COOKIES["csrftoken"] = token
        request.META["HTTP_X_CSRFTOKEN"] = token
    return whoami(request)


@pytest.mark.django_db
def test_a_token_authenticates_a_script_and_notes_when_it_was_used() -> None:
    user = get_user_model().objects.create_user("ada")
    row, token = ApiToken.issue(user)
    response = call("POST", authorization=f"Bearer {token}")
    assert (response.status_code, body(response)) == (200, {"user": "ada"})
    row.refresh_from_db()
    assert row.last_used_at is not None
    assert row.key_hash == ApiToken.hash(token), "only the token's hash is stored"


@pytest.mark.django_db
def test_the_last_use_is_written_at_most_once_a_minute() -> None:
    """A script's every call is not a database write: the time of the last use is kept to the minute."""
    row, token = ApiToken.issue(get_user_model().objects.create_user("ada"))
    call("GET", authorization=f"Bearer {token}")
    row.refresh_from_db()
    first = row.last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert call("GET", authorization=f"Bearer {token}").status_code == 200
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    row.refresh_from_db()
    assert row.last_used_at == first
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first - timedelta(seconds=61))
    call("GET", authorization=f"Bearer {token}")
    row.refresh_from_db()
    assert row.last_used_at > first


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", ["", "Bearer kiln_wrong", "Bearer "])
def test_no_token_or_a_wrong_one_gets_401_with_a_bearer_challenge(authorization: str) -> None:
    response = call("GET", authorization=authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="kiln"'


@pytest.mark.django_db
def test_the_token_of_a_deactivated_user_no_longer_works() -> None:
    user = get_user_model().objects.create_user("ada", is_active=False)
    _row, token = ApiToken.issue(user)
    assert call("GET", authorization=f"Bearer {token}").status_code == 401


@pytest.mark.django_db
def test_a_browser_session_must_send_the_csrf_token_to_change_anything() -> None:
    user = get_user_model().objects.create_user("ada")
    assert call("GET", user=user).status_code == 200
    refused = call("POST", user=user)
    assert (refused.status_code, body(refused)) == (403, {"error": "CSRF check failed"})
    assert call("POST", user=user, csrf=True).status_code == 200


def test_a_method_the_view_does_not_take_gets_405_in_json() -> None:
    response = call("DELETE")
    assert (response.status_code, body(response)) == (405, {"error": "method DELETE not allowed"})


@pytest.mark.django_db
def test_create_api_token_prints_a_working_token_on_its_last_line() -> None:
    user = get_user_model().objects.create_user("ops")
    out = StringIO()
    call_command("create_api_token", "ops", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    assert ApiToken.objects.get(key_hash=ApiToken.hash(token)).user == user
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_a_token_issued_while_tokens_lived_in_thumbnails_keeps_working_after_the_move() -> None:
    """The move of ApiToken from thumbnails to accounts renames its table and keeps every row."""
    user = get_user_model().objects.create_user("ada")
    executor = MigrationExecutor(connection)
    before = [("thumbnails", "0001_initial"), ("accounts", None)]
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        executor = MigrationExecutor(connection)
        old_state = executor.loader.project_state([("thumbnails", "0001_initial")])
        old_token = old_state.apps.get_model("thumbnails", "ApiToken")
        old_token.objects.create(user_id=user.pk, key_hash=ApiToken.hash("kiln_old-token"), prefix="old-toke")
    finally:
        MigrationExecutor(connection).migrate(leaves)
    response = call("GET", authorization="Bearer kiln_old-token")
    assert (response.status_code, body(response)) == (200, {"user": "ada"})
