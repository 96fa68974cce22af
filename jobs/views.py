"""Views of the jobs app. `flower_auth` is the endpoint nginx asks before it proxies a request to Flower."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

# Methods that only read. Anything else sent to Flower (worker shutdown, pool resize, task revoke) changes
# the cluster and needs `jobs.operate_flower`.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Flower's task list fetches its rows with a POST (a DataTables form): a read, although not by method.
READ_ONLY_POSTS = frozenset({"/flower/tasks/datatable"})
# nginx reads this header from a 401 and redirects the browser there (`auth_request_set`).
LOGIN_URL_HEADER = "X-Kiln-Login-URL"


def flower_request_is_a_read(method: str, uri: str) -> bool:
    return method.upper() in READ_METHODS or urlsplit(uri).path in READ_ONLY_POSTS


@never_cache
@require_safe
def flower_auth(request: HttpRequest) -> HttpResponse:
    """nginx's `auth_request` for /flower/: 204 lets the request through, 401 sends it to the login page.

    nginx passes the method and URI of the request it is deciding on in `X-Original-Method` and
    `X-Original-URI` (its subrequest itself is always a GET). 403 for a user who may not see Flower, or
    who may see it but sent a state-changing request without `jobs.operate_flower`.
    """
    user = request.user
    original_uri = request.headers.get("X-Original-URI", "/flower/")
    if not user.is_authenticated:
        response = HttpResponse(status=401)
        login = redirect_to_login(original_uri, login_url=reverse("admin:login"))
        response[LOGIN_URL_HEADER] = login["Location"]
        return response
    if not (user.is_active and user.is_staff and user.has_perm("jobs.view_dashboard")):
        return HttpResponse(status=403)
    method = request.headers.get("X-Original-Method", "GET")
    if not flower_request_is_a_read(method, original_uri) and not user.has_perm("jobs.operate_flower"):
        return HttpResponse(status=403)
    return HttpResponse(status=204)
