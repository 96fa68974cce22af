"""The job lists of the admin: the search box, the filters, and counts that stop at a limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import admin as jobs_admin
from jobs.models import Job
from metrics.store import tally_write
from metrics.tally import Tally

pytestmark = [pytest.mark.database, pytest.mark.django_db]

JOBS = "/admin/jobs/job/"
FAILED = "/admin/jobs/failedjob/"
RENDITION = "thumbnails.tasks.rendition_generate"


def recorded(task_id: str, *, args=(), kwargs=None, ago=timedelta(minutes=1), **fields) -> Job:
    values = {
        "task_name": RENDITION,
        "queue": "high",
        "state": Job.State.SUCCEEDED,
        "published_at": timezone.now() - ago,
        "finished_at": timezone.now() - ago + timedelta(seconds=2),
    }
    values.update(fields)
    return Job.objects.create(task_id=task_id, args=list(args), kwargs=kwargs or {}, **values)


def listed(client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return [job.task_id for job in response.context["cl"].result_list]


@pytest.fixture
def jobs() -> None:
    recorded("number", args=[12])
    recorded("string", args=["12"])
    recorded("keyword", kwargs={"image_id": 12, "force": True})
    recorded("longer", args=[123])
    recorded("ends-alike", args=[412])
    recorded(
        "failed",
        args=[7],
        state=Job.State.FAILED,
        exception_type="OSError",
        exception_message="[Errno 5] Input/output error: '/media/originals/7.jpg'",
    )
    recorded("old", kwargs={"report_id": 5, "format": "pdf"}, ago=timedelta(days=3))


def test_a_bare_number_finds_the_jobs_with_that_whole_argument(admin_client, jobs) -> None:
    assert listed(admin_client, f"{JOBS}?q=12") == ["keyword", "string", "number"]
    assert listed(admin_client, f"{JOBS}?q=+arg:12+") == ["keyword", "string", "number"]
    assert listed(admin_client, f'{JOBS}?q=arg:"12"') == ["string"]
    assert listed(admin_client, f"{JOBS}?q=pdf") == ["old"]


def test_the_search_box_says_what_it_understands(admin_client) -> None:
    page = admin_client.get(JOBS).content.decode()
    assert "never 123" in page
    assert "id:123 for one job" in page


def test_a_task_id_a_job_id_and_error_words_are_found_too(admin_client, jobs) -> None:
    task_id = "4f1e5c2a-9b0d-4c3e-8a7f-0123456789ab"
    job = recorded(task_id)
    assert listed(admin_client, f"{JOBS}?q={task_id}") == [task_id]
    assert listed(admin_client, f"{JOBS}?q=id:{job.pk}") == [task_id]
    assert listed(admin_client, f"{JOBS}?q=input/output") == ["failed"]
    assert listed(admin_client, f"{FAILED}?q=oserror") == ["failed"]


@pytest.mark.parametrize(
    "query",
    ["id:abc", "id:99999999999999999999999", "id:²", "%25", "_", "arg:", "A" * 300, "ünïcødé ✓"],
)
def test_a_search_nothing_can_match_lists_nothing(admin_client, jobs, query) -> None:
    assert listed(admin_client, f"{JOBS}?q={query}") == []


def test_a_nul_in_the_search_is_refused_by_the_admin_with_a_200(admin_client, jobs) -> None:
    assert admin_client.get(f"{JOBS}?q=12%00").status_code == 200


def test_the_filters_combine_task_state_queue_and_time(admin_client, jobs) -> None:
    recorded("other-task", task_name="purge.tasks.purge_run", queue="default", state=Job.State.FAILED)
    assert listed(admin_client, f"{JOBS}?task_name={RENDITION}&state=failed") == ["failed"]
    assert listed(admin_client, f"{JOBS}?queue=default") == ["other-task"]
    assert "old" not in listed(admin_client, f"{JOBS}?published=24h")
    assert listed(admin_client, f"{JOBS}?published=7d&q=5") == ["old"]
    three_days_ago = (timezone.localdate() - timedelta(days=3)).isoformat()
    on_that_day = listed(admin_client, f"{JOBS}?published={three_days_ago}")
    old = Job.objects.get(task_id="old")
    assert on_that_day == (
        ["old"] if timezone.localdate(old.published_at).isoformat() == three_days_ago else []
    )
    assert listed(admin_client, f"{FAILED}?exception_type=OSError&finished=1h&queue=high") == ["failed"]


@pytest.mark.parametrize("value", ["soon", "12x", "%00", "9999999999d", "2026-13-45"])
def test_a_time_the_filter_cannot_read_lists_nothing(admin_client, jobs, value) -> None:
    assert listed(admin_client, f"{JOBS}?published={value}") == []
    assert listed(admin_client, f"{FAILED}?finished={value}") == []


def test_the_task_and_error_filters_offer_what_the_metrics_counted_without_reading_the_jobs(
    admin_client, jobs
) -> None:
    tally = Tally()
    tally.job_counted("failed", at=timezone.now(), queue="high", task_name=RENDITION, exception="OSError")
    tally_write(tally)
    page = admin_client.get(FAILED).content.decode()
    assert f"?task_name={RENDITION}" in page
    assert "?exception_type=OSError" in page
    # A task in the URL that was never counted (an old one) still filters, and is offered.
    response = admin_client.get(f"{FAILED}?task_name=old.task")
    (task_filter,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "task"]
    assert task_filter.lookup_choices == [(RENDITION, RENDITION), ("old.task", "old.task")]
    assert list(response.context["cl"].result_list) == []


def test_past_the_count_limit_the_list_says_more_than(admin_client, jobs, monkeypatch) -> None:
    monkeypatch.setattr(jobs_admin, "COUNT_LIMIT", 3)
    page = admin_client.get(f"{JOBS}?q=12").content.decode()
    assert "3 jobs" in page
    assert "more than 3 jobs" not in page
    page = admin_client.get(JOBS).content.decode()
    assert "more than 3 jobs: narrow them with the filters or a search" in page
    assert "objects across all pages" not in page  # the rows on the page can be selected, not all
    for number in range(4):
        recorded(f"ninety-nine-{number}", args=[99])
    page = admin_client.get(f"{JOBS}?q=99").content.decode()
    assert "more than 3 results" in page
    assert "more than 3 jobs" in page


def test_within_a_time_filter_the_newest_by_publish_time_comes_first(admin_client) -> None:
    recorded("published-later", ago=timedelta(minutes=1))
    recorded("published-earlier", ago=timedelta(minutes=5))
    assert listed(admin_client, JOBS) == ["published-earlier", "published-later"]
    assert listed(admin_client, f"{JOBS}?published=1h&state=succeeded") == [
        "published-later",
        "published-earlier",
    ]
