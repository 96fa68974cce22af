"""The purge runs list and a run's page in headless Chromium at 1366 px, served by Django's live server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from purge.models import PurgeBatch, PurgeRun, RetentionPolicy
from tests.support.browser import RETRY_ON, count, in_page, text_of

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-the-browser-test"
LONG_NAME = (
    "Report history records of every report rendered by the nightly print service for all customers "
    "in every region, kept for the auditors_and_their_quarterly_reconciliation_spreadsheets"
)


def runs() -> dict[str, PurgeRun]:
    now = timezone.now()
    history = RetentionPolicy.objects.get(target="report_history")
    RetentionPolicy.objects.filter(pk=history.pk).update(name=LONG_NAME)
    files = RetentionPolicy.objects.get(target="orphan_media")
    admin = get_user_model().objects.get(username="admin")
    done = PurgeRun.objects.create(
        policy=files, trigger="admin", triggered_by=admin, state=PurgeRun.State.DONE,
        created_at=now - timedelta(hours=2), started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=252),
        examined=1_234_567, removed=54_321, removed_bytes=3_400_000_000, batches=3, covered=1_234_567,
    )  # fmt: skip
    for number in (1, 2, 3):
        PurgeBatch.objects.create(
            run=done, number=number, examined=5000, removed=1800 + number, removed_bytes=110_000_000,
            seconds=1.7 * number, finished_at=done.started_at + timedelta(seconds=80 * number),
        )  # fmt: skip
    PurgeRun.objects.create(
        policy=history, trigger="nightly", state=PurgeRun.State.FAILED, started_at=now - timedelta(days=1),
        finished_at=now - timedelta(days=1) + timedelta(minutes=3), scope=400_000, covered=120_000,
        error="OperationalError: database is locked " + "while deleting a batch of history records " * 4,
    )  # fmt: skip
    running = PurgeRun.objects.create(
        policy=history, trigger="nightly", state=PurgeRun.State.RUNNING, started_at=now - timedelta(minutes=1),
        scope=4_000_000, covered=1_000_000, examined=1_000_000, removed=998_765, batches=200,
    )  # fmt: skip
    PurgeRun.objects.create(
        policy=files, trigger="command", dry_run=True, state=PurgeRun.State.RUNNING,
        started_at=now - timedelta(seconds=30), examined=15_000, covered=15_000, removed=120, removed_bytes=9_000_000,
    )  # fmt: skip
    return {"done": done, "running": running}


def log_in(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def widths(browser: webdriver.Chrome, selector: str) -> tuple[int, int]:
    """The page's width, and how far the box at selector would need to scroll sideways (0: it fits)."""
    return in_page(
        browser,
        "const box = document.querySelector(arguments[0]);"
        "return [document.documentElement.scrollWidth, box.scrollWidth - box.clientWidth];",
        selector,
    )


def test_the_runs_list_fits_1366_px_and_a_running_run_shows_a_bar_and_the_time_left(
    live_server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    get_user_model().objects.create_superuser("admin", "admin@localhost", PASSWORD)
    made = runs()

    log_in(browser, f"{live_server.url}/admin/purge/purgerun/")
    wait = WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON)
    wait.until(lambda d: count(d, "#result_list tbody tr") == 4, message="the runs list did not show 4 runs")
    # Taken first, so that a failure below leaves the picture of what failed.
    assert browser.save_screenshot(str(tmp_path / "purge-runs.png"))
    page_width, table_overflow = widths(browser, "#changelist-form .results")
    assert page_width <= 1366
    assert table_overflow == 0, f"the runs table is {table_overflow} px wider than its box"
    running = f'#result_list a[href$="/{made["running"].pk}/change/"]'
    row = in_page(browser, "return document.querySelector(arguments[0]).closest('tr').innerText;", running)
    assert "25\u00a0%" in row and " left" in row, row  # noqa: PT018
    assert count(browser, f"{running.replace(' a[', ' tr:has(a[')}) progress[value]") == 1
    assert "total not known" in text_of(browser, "#result_list")
    assert "54,321" in text_of(browser, "#result_list")

    browser.get(f"{live_server.url}/admin/purge/purgerun/{made['done'].pk}/change/")
    wait.until(lambda d: count(d, "#purge-batches tbody tr") == 3, message="the run's page lists no batches")
    page_width, content_overflow = widths(browser, "#content")
    # The whole page in one picture, at the same width: the batches are below the fold.
    browser.set_window_size(1366, in_page(browser, "return document.documentElement.scrollHeight;") + 140)
    assert browser.save_screenshot(str(tmp_path / "purge-run.png"))
    assert page_width <= 1366
    assert content_overflow == 0
    page = text_of(browser, "#content")
    for fact in ("real run", "done", "54,321 · 3.2\u00a0GB", "4 min 12 s", "admin", "1,234,567 in 3 batches"):
        assert fact in page, fact
