"""The issues pages in the admin: who may see them, what they show, Retry all and Forget all."""

from __future__ import annotations

import re

import pytest

from jobs.models import AuditEntry, Job
from tests.jobs.conftest import failure, grant

pytestmark = [pytest.mark.database, pytest.mark.django_db]

URL = "/admin/jobs/issues/"


@pytest.fixture
def issue() -> str:
    """One issue of three jobs, one of which cannot be retried (its arguments were not kept)."""
    fingerprint = failure("a", LookupError("image 12 not found")).fingerprint
    failure("b", LookupError("image 345 not found"), queue="default")
    failure("c", LookupError("image 6 not found"), args=[], args_truncated=True)
    return fingerprint


def test_anonymous_users_are_sent_to_the_admin_login(client, issue) -> None:
    for url in (URL, f"{URL}{issue}/", f"{URL}{issue}/retry/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_staff_without_the_permission_get_403(client, django_user_model, issue) -> None:
    client.force_login(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    for url in (URL, f"{URL}{issue}/", f"{URL}{issue}/retry/", f"{URL}{issue}/forget/"):
        assert client.get(url).status_code == 403


def test_an_operator_sees_the_issues_and_an_issues_page(client, operator, issue) -> None:
    failure("d", ValueError("not an image"))
    client.force_login(operator)
    listing = client.get(URL).content.decode()
    assert listing.index("ValueError: not an image") < listing.index("LookupError: image &lt;n&gt; not found")
    assert f'href="{URL}{issue}/"' in listing
    assert "high 2 · default 1" in listing
    page = client.get(f"{URL}{issue}/").content.decode()
    assert '<h1 class="kiln-heading">LookupError: image &lt;n&gt; not found</h1>' in page
    assert '<pre class="kiln-traceback">Traceback (most recent call last):' in page
    for job in Job.objects.filter(fingerprint=issue):
        assert f'href="/admin/jobs/failedjob/{job.id}/change/"' in page
    assert "Retry all" not in page, "no retry_job permission, no buttons"


def test_the_pages_need_no_inline_script_or_style_attribute(client, operator, issue) -> None:
    """The CSP allows scripts and style sheets with the response's nonce only."""
    client.force_login(grant(operator, "retry_job"))
    for url in (URL, f"{URL}{issue}/", f"{URL}{issue}/retry/", f"{URL}{issue}/forget/"):
        page = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)", page), url
        assert not re.search(r"<style(?![^>]*\bnonce=)", page), url
        assert " style=" not in page, url


@pytest.mark.parametrize(
    "fingerprint",
    ["0123456789ab", "nope", "0123456789AB", "x" * 5000, "%00", "..%2F..%2Fetc", "'%20OR%201=1"],
)
def test_an_unknown_or_malformed_fingerprint_is_404(client, operator, fingerprint: str) -> None:
    client.force_login(grant(operator, "retry_job"))
    for suffix in ("", "retry/", "forget/"):
        assert client.get(f"{URL}{fingerprint}/{suffix}").status_code == 404
    assert client.post(f"{URL}{fingerprint}/forget/").status_code in (302, 404)
    assert not AuditEntry.objects.exists()


def test_retry_all_says_what_it_will_do_then_does_it(client, operator, issue, app_broker) -> None:
    client.force_login(operator)
    assert client.get(f"{URL}{issue}/retry/").status_code == 403, "retry needs jobs.retry_job"
    assert client.post(f"{URL}{issue}/retry/").status_code == 403
    client.force_login(grant(operator, "retry_job"))
    assert "Retry all" in client.get(f"{URL}{issue}/").content.decode()
    preview = client.get(f"{URL}{issue}/retry/").content.decode()
    assert "Retry 2 jobs of this issue? 1 cannot be retried (arguments not kept)." in preview
    response = client.post(f"{URL}{issue}/retry/", follow=True)
    assert response.redirect_chain == [(f"{URL}{issue}/", 302)], "the refused job is still there"
    text = response.content.decode()
    assert "2 jobs published again. 1 job not retried: its arguments were not kept" in text
    assert Job.objects.filter(fingerprint=issue, retried_at__isnull=False).count() == 2
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.count, entry.user) == ("retry", f"issue {issue}", 2, operator)


def test_forget_all_says_how_many_jobs_go_then_deletes_them(client, operator, issue) -> None:
    client.force_login(grant(operator, "retry_job"))
    preview = client.get(f"{URL}{issue}/forget/").content.decode()
    assert "Forget 3 jobs of this issue?" in preview
    response = client.post(f"{URL}{issue}/forget/", follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "3 failed jobs forgotten." in response.content.decode()
    assert not Job.objects.filter(fingerprint=issue).exists()
    assert client.get(f"{URL}{issue}/").status_code == 404
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.count) == ("forget", f"issue {issue}", 3)


def test_an_issue_dealt_with_meanwhile_is_said_so_not_an_error(client, operator, issue) -> None:
    client.force_login(grant(operator, "retry_job"))
    Job.objects.filter(fingerprint=issue).delete()  # another operator, a second earlier
    response = client.post(f"{URL}{issue}/forget/", follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "has no job left in the failed list" in response.content.decode()


def test_the_dashboard_links_the_issues(client, operator) -> None:
    client.force_login(operator)
    assert f'href="{URL}"' in client.get("/admin/jobs/dashboard/").content.decode()
