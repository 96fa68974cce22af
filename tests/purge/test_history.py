"""A policy's page charts its real runs night by night."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from purge.history import policy_runs
from purge.models import PurgeRun, RetentionPolicy
from tests.purge.test_admin import staff

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def finished_run(
    policy: RetentionPolicy, *, nights_ago: int, removed: int, seconds: float, **fields
) -> PurgeRun:
    started = timezone.now().replace(hour=0, minute=0, second=5, microsecond=0) - timedelta(days=nights_ago)
    values = {
        "state": PurgeRun.State.DONE,
        "trigger": PurgeRun.Trigger.NIGHTLY,
        "started_at": started,
        "finished_at": started + timedelta(seconds=seconds),
        "removed": removed,
        "examined": removed,
    }
    values.update(fields)
    return PurgeRun.objects.create(policy=policy, **values)


def test_only_finished_real_runs_make_the_history_oldest_first() -> None:
    policy = RetentionPolicy.objects.get(target="report_history")
    finished_run(policy, nights_ago=2, removed=500, seconds=40)
    finished_run(policy, nights_ago=1, removed=9, seconds=3, dry_run=True)
    finished_run(policy, nights_ago=1, removed=0, seconds=1, state=PurgeRun.State.FAILED)
    finished_run(policy, nights_ago=0, removed=1200, seconds=95)
    assert [run.removed for run in policy_runs(policy)] == [500, 1200]


def test_the_policy_page_draws_removed_rows_and_durations_per_night() -> None:
    policy = RetentionPolicy.objects.get(target="report_history")
    finished_run(policy, nights_ago=1, removed=500, seconds=40)
    finished_run(policy, nights_ago=0, removed=1200, seconds=95)
    page = staff().get(f"/admin/purge/retentionpolicy/{policy.pk}/change/").content.decode()
    assert "Night by night" in page
    assert "<title>Rows removed per run</title>" in page
    assert re.search(r"<title>\d+ \w{3} 00:00 · rows removed 1\.2k</title>", page)
    assert re.search(r"<title>\d+ \w{3} 00:00 · took 1\.6 min</title>", page)
    assert "the last 2 finished runs: 1,700 rows removed; the longest took 1 min 35 s" in page


def test_a_file_policy_counts_files_and_the_space_freed() -> None:
    policy = RetentionPolicy.objects.get(target="stale_renditions")
    finished_run(policy, nights_ago=0, removed=3, seconds=2, removed_bytes=3 * 1_048_576)
    page = staff().get(f"/admin/purge/retentionpolicy/{policy.pk}/change/").content.decode()
    assert "<title>Files removed per run</title>" in page
    assert "3 files removed, 3.0 MB freed" in page


def test_a_policy_that_never_ran_shows_empty_charts() -> None:
    policy = RetentionPolicy.objects.get(target="print_tasks")
    page = staff().get(f"/admin/purge/retentionpolicy/{policy.pk}/change/")
    assert page.status_code == 200
    assert "no real run has finished yet" in page.content.decode()
