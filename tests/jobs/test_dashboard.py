"""The jobs dashboard in the admin: who may see it, its JSON, its buttons."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from broker import queues as kiln_broker
from jobs.models import AuditEntry, Job
from tests.jobs.conftest import grant

pytestmark = [pytest.mark.database, pytest.mark.django_db]

URL = "/admin/jobs/dashboard/"


def test_anonymous_users_are_sent_to_the_admin_login(client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/jobs/dashboard/")


def test_staff_without_the_permission_get_403(client, django_user_model) -> None:
    django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(django_user_model.objects.get(username="staff"))
    assert client.get(URL).status_code == 403
    assert client.get(URL + "data/").status_code == 403


def test_an_operator_sees_the_page_and_its_data(client, operator, app_broker) -> None:
    Job.objects.create(
        task_id="f1", task_name="probe.fail", queue="high", state="failed", finished_at=timezone.now(),
        exception_type="ValueError", exception_message="boom\nsecond line",
    )  # fmt: skip
    client.force_login(operator)
    page = client.get(URL)
    assert page.status_code == 200
    assert b"Jobs dashboard" in page.content
    assert b'name="action" value="pause"' not in page.content, "no operate permission, no queue buttons"
    data = client.get(URL + "data/").json()
    assert [queue["name"] for queue in data["queues"]] == ["high", "default"]
    assert data["broker"] == "reachable"
    assert data["failed"] == 1
    assert data["recent_failed"][0]["error"] == "ValueError: boom"


def test_buttons_need_their_own_permissions_and_are_audited(client, operator, app_broker) -> None:
    client.force_login(operator)
    assert client.post(URL + "action/", {"action": "pause", "queue": "default"}).status_code == 403
    assert kiln_broker.paused_queues() == set()

    grant(operator, "operate_queues")
    response = client.post(URL + "action/", {"action": "pause", "queue": "default"})
    assert response.status_code == 302
    assert kiln_broker.paused_queues() == {"default"}
    entry = AuditEntry.objects.get(action="pause")
    assert (entry.actor, entry.user, entry.target) == ("operator", operator, "default")

    client.post(URL + "action/", {"action": "clear", "queue": "default", "confirm": "wrong"})
    assert not AuditEntry.objects.filter(action="clear").exists(), "clearing needs the queue's name typed"
    client.post(URL + "action/", {"action": "resume", "queue": "default"})
    assert kiln_broker.paused_queues() == set()


def test_the_dashboard_refuses_unknown_queues(client, operator, app_broker) -> None:
    grant(operator, "operate_queues")
    client.force_login(operator)
    response = client.post(URL + "action/", {"action": "pause", "queue": "nope"}, follow=True)
    assert "unknown queue" in response.content.decode().lower()
    assert kiln_broker.paused_queues() == set()


def test_flush_from_the_dashboard_needs_the_word_typed_and_is_audited(client, operator, app_broker) -> None:
    Job.objects.create(
        task_id="f2", task_name="probe.fail", queue="high", state="failed", finished_at=timezone.now()
    )
    grant(operator, "retry_job")
    client.force_login(operator)
    client.post(URL + "action/", {"action": "flush"})
    assert Job.objects.filter(task_id="f2").exists()
    client.post(URL + "action/", {"action": "flush", "confirm": "flush"})
    assert not Job.objects.filter(task_id="f2").exists()
    assert AuditEntry.objects.get(action="flush").count == 1


SCHEDULES = "/admin/jobs/schedules/"


def test_the_schedules_page_needs_staff_with_the_dashboard_permission(client, django_user_model) -> None:
    assert client.get(SCHEDULES)["Location"].startswith("/admin/login/?next=/admin/jobs/schedules/")
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(SCHEDULES).status_code == 403


def test_the_schedules_page_lists_every_entry_with_its_runs_and_says_which_is_late(client, operator) -> None:
    from django_celery_beat.models import PeriodicTask

    from tests.jobs.test_selectors import beat_entry, job

    PeriodicTask.objects.filter(name="purge: nightly").update(last_run_at=timezone.now())
    beat_entry("probe: beat silent", sent_ago=600, task="probe.silent")
    job("silent-1", "probe.silent", 600, started=True)
    client.force_login(operator)
    page = client.get(SCHEDULES)
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 of 2 watched entries late." in html
    rows = {name: row for row, name in re.findall(r"(<tr class=.*?>([^<>]+)</a>.*?</tr>)", html, re.DOTALL)}
    nightly, silent = rows["purge: nightly"], rows["probe: beat silent"]
    assert "daily at 00:00" in nightly
    assert "10 min" in nightly, "the nightly purge's grace"
    assert "on time" in nightly
    assert "late if not started by" in nightly, "an entry on time says when its next run would be late"
    assert "every minute" in silent
    assert '<div class="kiln-reason">succeeded, 0.1 s</div>' in silent, "the last job's outcome and duration"
    assert re.search(r'<span class="kiln-status">late since \d\d:\d\d(:\d\d)?</span>', silent)
    assert '<div class="kiln-reason">beat has sent nothing for the ' in silent, "late since: said once"
    assert re.search(r'<td class="kiln-when">\d+ \w{3} \d{4}, 00:00</td>', nightly), (
        "the next midnight, to the minute"
    )
    # Content-Security-Policy: the page's look comes from a file, and no script is inline.
    assert "<style" not in html
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "/static/jobs/schedules.css" in html


def test_the_dashboard_links_the_schedules_page(client, operator) -> None:
    client.force_login(operator)
    assert f'href="{SCHEDULES}"' in client.get(URL).content.decode()
