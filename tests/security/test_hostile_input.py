"""No input makes a 500: every URL the site has, anonymous, as a user and as staff, with hostile values in
its path, its query string and its form fields."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from reports.models import Report, ReportImage
from tests.support.processes import REPO
from thumbnails.models import Image

APPS = ("accounts", "blueprint", "config", "jobs", "purge", "reports", "thumbnails")

HOSTILE = [
    "99999999999999999999999",
    "-1",
    "0",
    "x",
    "1,,x,-2",
    "ünïcødé ✓ 名前",
    "A" * 5000,
    "9" * 5000,
    "' OR 1=1 --",
    "../../../etc/passwd",
    "\x00",
]
# The admin is Django's own code, fuzzed upstream; Kiln's part in it is its ModelAdmins (filters, search,
# actions, lookups), which these reach.
HOSTILE_ADMIN = ["99999999999999999999999", "-1", "ünïcødé ✓ 名前", "\x00", "A" * 300]
# Values a path segment can carry at all (a NUL or a slash never reaches a view through the router).
HOSTILE_PATH = ["1", "99999999999999999999999", "0", "x", "%C3%BC%E2%9C%93", "A" * 300, "%2e%2e%2f%2e%2e"]
# The admin's own query parameters, beside every field name Kiln's views read.
ADMIN_PARAMETERS = ["q", "o", "p", "e", "all", "_changelist_filters", "_popup", "_to_field", "id__exact"]


def parameter_names() -> list[str]:
    """Every request.GET / request.POST key Kiln's views read, found in the source (a new one is fuzzed too)."""
    names: set[str] = set()
    pattern = re.compile(
        r"""request\.(?:GET|POST)(?:\.get|\.getlist)?[(\[]\s*["'](\w+)["']|post(?:\.get)?[(\[]\s*["'](\w+)["']"""
    )
    for app in APPS:
        for source in (REPO / app).rglob("*.py"):
            for match in pattern.finditer(source.read_text()):
                names.add(match.group(1) or match.group(2))
    return sorted(names | set(ADMIN_PARAMETERS))


def url_templates() -> list[str]:
    """Every URL of the site with `{}` where a path parameter goes."""
    templates: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            text = entry.pattern.regex.pattern if _is_regex(entry) else str(entry.pattern)
            text = re.sub(r"<(?:\w+:)?\w+>", "{}", text)
            text = re.sub(r"\(\?P<\w+>(?:[^()]|\([^()]*\))*\)", "{}", text)
            text = text.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + text)
            elif isinstance(entry, URLPattern):
                templates.append(prefix + text)

    walk(get_resolver().url_patterns, "/")
    return sorted(set(templates))


def _is_regex(entry) -> bool:
    return type(entry.pattern).__name__ == "RegexPattern"


def requests(template: str, names: list[str], *, paths_only: bool = False) -> Iterator[tuple[str, str, dict]]:
    """(method, path, data) to try on one URL; `paths_only` for a caller turned away before any parameter
    is read (the admin redirects an anonymous caller to its login whatever the request)."""
    holes = template.count("{}")
    paths = [template.format(*[value] * holes) for value in HOSTILE_PATH] if holes else [template]
    for path in paths:
        yield "get", path, {}
        yield "post", path, {}
    if paths_only:
        return
    base = paths[0] if holes else template
    for value in HOSTILE_ADMIN if template.startswith("/admin/") and "dashboard" not in template else HOSTILE:
        query = urllib.parse.urlencode(dict.fromkeys(names, value))
        yield "get", f"{base}?{query}", {}
        yield "post", base, {name: value for name in names if name not in {"file", "files"}}
    upload = SimpleUploadedFile("ünï ✓ " + "n" * 300 + ".jpg", b"\xff\xd8\xff not really a jpeg")
    yield "post", base, {"file": upload, "files": upload, "name": "x", "report": "99999999999999999999999"}


@pytest.fixture
def users(django_user_model):
    # Not id 1: the fuzz posts to /admin/auth/user/1/delete/ too, and must not delete its own callers.
    staff = django_user_model.objects.create_superuser("fuzz-staff", "staff@example.com", "pw-1", pk=1000)
    user = django_user_model.objects.create_user("fuzz-user", "user@example.com", "pw-2", pk=1001)
    # Id 1 of the main objects exists, so detail pages are fuzzed past their lookup too.
    report = Report.objects.create(name="fuzzed", owner=user)
    # Dispatched a moment ago: rendering the report does not try the (absent) broker on every request.
    image = Image.objects.create(
        original="originals/00/x",
        original_name="x.jpg",
        content_hash="0" * 64,
        byte_size=1,
        dispatched_at=timezone.now(),
    )
    ReportImage.objects.create(report=report, image=image)
    return {"anonymous": None, "user": user, "staff": staff}


@pytest.mark.database
@pytest.mark.django_db(transaction=True)
def test_no_url_answers_a_500_to_hostile_input(users, media_root, settings) -> None:
    settings.KILN_UPLOAD_MAX_MB = 1
    names = parameter_names()
    templates = url_templates()
    assert {"/api/images/", "/admin/thumbnails/image/{}/change/", "/reports/{}/upload/"} <= set(templates)
    assert {"ids", "action", "queue", "processes", "job", "name"} <= set(names), names

    failures: list[str] = []
    tried = 0
    for who, user in users.items():
        client = Client(raise_request_exception=False)
        for template in templates:
            if who == "user" and template.startswith("/admin/") and "dashboard" not in template:
                continue  # the admin turns a non-staff user away at the door, whatever the URL
            if user is not None:
                client.force_login(user)  # again: the logout URLs are fuzzed too
            turned_away = who == "anonymous" and template.startswith("/admin/")
            for method, path, data in requests(template, names, paths_only=turned_away):
                response = getattr(client, method)(path, data)
                tried += 1
                # /healthz answers 503 when Kiln is unhealthy (here: no broker at all); that is its answer.
                if response.status_code >= 500 and not (
                    path.startswith("/healthz") and response.status_code == 503
                ):
                    failures.append(f"{who} {method.upper()} {path[:120]} -> {response.status_code}")
    assert tried > 1000
    assert not failures, f"{len(failures)} of {tried} requests answered 5xx:\n" + "\n".join(failures[:40])
