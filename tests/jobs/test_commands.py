"""`manage.py jobs issues`, and `retry` and `forget` of a whole issue."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import AuditEntry, Job
from tests.jobs.conftest import failure

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def jobs(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_issues_lists_each_issue_with_its_count_task_title_and_last_seen() -> None:
    lost = failure("a", LookupError("image 12 not found")).fingerprint
    failure("b", LookupError("image 345 not found"))
    failure("c", ValueError("not an image"), task_name="reports.render")
    header, *rows = jobs("issues").splitlines()
    assert header.split()[:4] == ["issue", "jobs", "task", "title"]
    assert len(rows) == 2
    assert rows[1].split()[:5] == [lost, "2", "thumbnails.generate", "LookupError:", "image"]
    data = json.loads(jobs("issues", "--json"))
    assert [(issue["count"], issue["task"], issue["title"]) for issue in data] == [
        (1, "reports.render", "ValueError: not an image"),
        (2, "thumbnails.generate", "LookupError: image <n> not found"),
    ]
    assert data[1]["fingerprint"] == lost
    assert data[1]["latest_job"] == Job.objects.get(task_id="b").id


def test_without_failed_jobs_issues_says_so() -> None:
    assert jobs("issues") == "no failed jobs\n"


def test_retry_and_forget_of_an_issue_say_how_many_they_touched(app_broker) -> None:
    issue = failure("a", LookupError("image 12 not found")).fingerprint
    failure("b", LookupError("image 345 not found"))
    failure("c", LookupError("image 6 not found"), args=[], args_truncated=True)
    with pytest.raises(SystemExit):  # exit 1: one job could not be retried
        jobs("retry", "--issue", issue)
    assert Job.objects.filter(retried_at__isnull=False).count() == 2
    assert jobs("forget", "--issue", issue) == "1 failed job(s) forgotten\n"
    assert [(entry.action, entry.target, entry.count) for entry in AuditEntry.objects.order_by("id")] == [
        ("retry", f"issue {issue}", 2),
        ("forget", f"issue {issue}", 1),
    ]


@pytest.mark.parametrize("verb", ["retry", "forget"])
def test_an_unknown_or_malformed_issue_is_a_clear_error(verb: str) -> None:
    with pytest.raises(CommandError, match="issue 0123456789ab has no job left in the failed list"):
        jobs(verb, "--issue", "0123456789ab")
    with pytest.raises(CommandError, match="'nope' is not an issue's fingerprint: 12 hex digits"):
        jobs(verb, "--issue", "nope")
    assert not AuditEntry.objects.exists()


def test_an_issue_names_the_jobs_alone() -> None:
    with pytest.raises(CommandError, match="--issue names the jobs to retry on its own"):
        jobs("retry", "--issue", "0123456789ab", "--queue", "high")
    with pytest.raises(CommandError, match="IDs, or --issue"):
        jobs("forget")
