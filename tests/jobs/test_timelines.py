"""The charts of the dashboard and the task pages, drawn from counted jobs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from metrics.store import tally_write
from metrics.tally import Tally

pytestmark = [pytest.mark.database, pytest.mark.django_db]

TASK = "thumbnails.tasks.rendition_generate"


def counted(
    minutes_ago: int, *, succeeded: int = 0, failed: int = 0, exception: str = "OSError", run: float = 0.4
) -> None:
    tally = Tally()
    at = timezone.now() - timedelta(minutes=minutes_ago)
    for _ in range(succeeded):
        tally.job_counted("succeeded", at=at, queue="high", task_name=TASK, hostname="high@a", run=run)
    for _ in range(failed):
        tally.job_counted(
            "failed", at=at, queue="high", task_name=TASK, hostname="high@a", exception=exception, run=run
        )
    tally.add("depth", at=at, queue="high", task_name="", value=succeeded + failed)
    tally_write(tally)


def test_the_dashboard_draws_each_queues_charts_for_the_window_asked(client, operator) -> None:
    counted(5, succeeded=30, failed=2)
    client.force_login(operator)
    page = client.get("/admin/jobs/dashboard/?window=1h").content.decode()
    assert page.count('<svg class="chart"') == 8  # four charts for each of the two queues
    assert "<strong>last hour</strong>" in page
    # The failed bar's hover text names both parts of the stack.
    assert re.search(r"<title>\d\d:\d\d · succeeded 30 · failed 2</title>", page)
    # A window nobody offers falls back to the default instead of failing.
    assert "<strong>last 24 hours</strong>" in client.get("/admin/jobs/dashboard/?window=2y").content.decode()


def test_the_tasks_page_lists_each_task_with_its_failure_rate_and_run_times(client, operator) -> None:
    counted(5, succeeded=99, failed=1, run=0.4)
    client.force_login(operator)
    page = client.get("/admin/jobs/tasks/?window=24h").content.decode()
    assert f"/admin/jobs/tasks/{TASK}/?window=24h" in page
    assert "1.0 %" in page
    assert '<td class="kiln-number">99</td>' in page


def test_a_task_page_shows_its_histogram_and_failures_by_exception(client, operator) -> None:
    counted(5, succeeded=10, run=0.4)
    counted(3, failed=4, exception="ValueError", run=2.0)
    counted(2, failed=1, exception="OSError", run=2.0)
    client.force_login(operator)
    page = client.get(f"/admin/jobs/tasks/{TASK}/?window=1h").content.decode()
    assert "<b>10</b> succeeded, <b>5</b> failed (33.3 %)" in page
    assert page.index("<code>ValueError</code>") < page.index("<code>OSError</code>")
    assert "<title>Run times</title>" in page
    assert re.search(r"<title>≤ [\d.]+ ms · jobs 10</title>", page)


def test_an_unknown_task_is_404_and_the_pages_need_the_dashboard_permission(
    client, operator, django_user_model
) -> None:
    client.force_login(operator)
    assert client.get("/admin/jobs/tasks/no.such.task/").status_code == 404
    assert client.get("/admin/jobs/tasks/%00%3Cscript%3E/").status_code == 404
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/jobs/tasks/").status_code == 403
