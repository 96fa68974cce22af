"""Login throttling with django-axes: a wrong password counts against the (username, client address) pair;
at KILN_LOGIN_FAILURE_LIMIT failures that pair is locked out for KILN_LOGIN_LOCKOUT_MINUTES.

django-axes because Django teams already trust it: it hooks `authenticate()` itself, so the site's login,
the admin's login and any later form are all covered; it keeps every attempt in the database (shared by
every web process and host), shows them in the admin, and lifts a lockout from the admin or with
`manage.py axes_reset_username <name>` / `axes_reset_ip <address>`. nginx adds a per-address rate limit
on the login URLs in front of it (deploy/nginx/kiln.conf).
"""

from __future__ import annotations

import ipaddress
import logging

from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind nginx every request comes from loopback and nginx overwrites
    X-Forwarded-For with the client's own address (kiln.conf); a request from anywhere else is taken
    at its word, so nobody outside can pick the address their failures count against."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
    try:
        behind_proxy = ipaddress.ip_address(remote).is_loopback
        forwarded = str(ipaddress.ip_address(forwarded)) if forwarded else ""
    except ValueError:
        return remote
    return forwarded if behind_proxy and forwarded else remote


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """429 with a page that says what happened, for how long, and who can lift it; Retry-After in seconds."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    response = render(
        request, "registration/locked_out.html", {"minutes": max(1, round(seconds / 60))}, status=429
    )
    response["Retry-After"] = str(seconds)
    return response


@receiver(user_locked_out)
def log_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    # The audit trail itself is axes' AccessAttempt and AccessFailureLog tables (in the admin); this line
    # is for whoever watches the logs. The username is what was typed, not a secret.
    logger.warning("login locked out: username=%r address=%s", username, ip_address)
