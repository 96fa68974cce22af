"""/metrics says what each policy's last real run did."""

from __future__ import annotations

import pytest

from purge.models import PurgeRun, RetentionPolicy
from tests.purge.test_history import finished_run
from tests.support.prometheus import samples, scrape

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def test_each_policy_reports_its_last_finished_real_run(client) -> None:
    history = RetentionPolicy.objects.get(target="report_history")
    finished_run(history, nights_ago=1, removed=500, seconds=40)
    finished_run(history, nights_ago=0, removed=1200, seconds=95)
    finished_run(history, nights_ago=0, removed=99, seconds=1, dry_run=True)  # a dry run removes nothing
    renditions = RetentionPolicy.objects.get(target="stale_renditions")
    finished_run(renditions, nights_ago=0, removed=3, seconds=2, state=PurgeRun.State.FAILED)
    RetentionPolicy.objects.filter(target="print_tasks").update(enabled=False)

    found = samples(scrape(client))
    assert found[("kiln_purge_last_run_removed", (("policy", "report_history"),))] == 1200
    assert found[("kiln_purge_last_run_duration_seconds", (("policy", "report_history"),))] == 95
    assert found[("kiln_purge_last_run_failed", (("policy", "report_history"),))] == 0
    assert found[("kiln_purge_last_run_failed", (("policy", "stale_renditions"),))] == 1
    assert found[("kiln_purge_policy_enabled", (("policy", "print_tasks"),))] == 0
    # A policy that never finished a run has no sample, rather than a run "at 1970".
    assert ("kiln_purge_last_run_timestamp_seconds", (("policy", "print_tasks"),)) not in found
