"""Every HTML page carries a Content-Security-Policy; its inline scripts and styles run by this response's
nonce only, so an injected <script> would not. (The browser tests run the pages under it in Chromium.)"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from reports.models import Report

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


def test_html_pages_have_a_nonce_policy_and_every_inline_script_and_style_carries_the_nonce(
    django_user_model, app_broker
) -> None:
    staff = django_user_model.objects.create_superuser("sam", "sam@example.com", "pw")
    report = Report.objects.create(name="R", owner=staff)
    client = Client()
    pages = ["/", "/accounts/login/"]
    client.force_login(staff)
    pages += [
        "/reports/",
        f"/reports/{report.pk}/",
        "/admin/",
        "/admin/jobs/dashboard/",
        "/admin/jobs/schedules/",
        "/admin/jobs/issues/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        directives = policy(response)
        assert directives["object-src"] == "object-src 'none'"
        assert directives["frame-ancestors"] == "frame-ancestors 'none'"
        assert "unsafe-inline" not in directives["script-src"] + directives["style-src"]
        html = response.content.decode()
        inline = [
            tag
            for tag in re.findall(r"<(?:script|style)(?![^>]*\bsrc=)[^>]*>", html)
            if "application/json" not in tag
        ]
        if not inline:
            assert directives["script-src"] == "script-src 'self'", page
            continue
        # The nonce is in the header only for a page that uses it; every inline tag carries it.
        nonce = re.search(r"'nonce-([^']+)'", directives["script-src"]).group(1)
        assert directives["style-src"] == f"style-src 'self' 'nonce-{nonce}'", page
        assert all(f'nonce="{nonce}"' in tag for tag in inline), (page, inline)
    # A fresh nonce per response.
    page = "/admin/jobs/dashboard/"
    assert policy(client.get(page))["script-src"] != policy(client.get(page))["script-src"]
