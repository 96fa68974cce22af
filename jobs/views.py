"""Views of the jobs app for machines and nginx: /healthz for load balancers and supervisors, /metrics for
Prometheus, and `flower_auth`, the endpoint nginx asks before it proxies a request to Flower. The dashboard's
views are in jobs/dashboard.py."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from broker import queues as broker_queues
from jobs.prometheus import KilnCollector
from outbox.prometheus import OutboxCollector
from purge.prometheus import PurgeCollector

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


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Cheap, no login: is the database reachable, is the broker? 200 or 503, with a JSON body."""
    checks = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any database error means "not healthy", whatever the backend
        checks["database"] = f"error: {type(error).__name__}"
    if not broker_queues.ping():
        checks["broker"] = "error: unreachable"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)


def metrics_allowed(request: HttpRequest) -> bool:
    """The token, or a direct connection from an allowed address. Behind nginx every request comes from
    127.0.0.1, so a request that passed a proxy (it carries X-Forwarded-For) needs the token."""
    token = settings.KILN_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if (
        token
        and header.startswith("Bearer ")
        and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    ):
        return True
    if "X-Forwarded-For" in request.headers:
        return False
    return request.META.get("REMOTE_ADDR", "") in settings.KILN_METRICS_ALLOWED_IPS


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "metrics need a token or an allowed address\n", status=403, content_type="text/plain"
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KilnCollector())
    registry.register(PurgeCollector())
    registry.register(OutboxCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
