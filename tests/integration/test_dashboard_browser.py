"""The jobs dashboard in headless Chromium against the running stack: live figures from both pools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import RETRY_ON, text_of
from tests.support.stack import ADMIN_PASSWORD, Stack
from tests.thumbnails import corpus

pytestmark = pytest.mark.processes


def test_an_admin_opens_the_dashboard_and_sees_both_pools_live(
    stack: Stack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{stack.base_url}/admin/jobs/dashboard/")
    assert "/admin/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    wait = WebDriverWait(browser, 40, ignored_exceptions=RETRY_ON)
    wait.until(
        lambda d: text_of(d, "#kiln-updated") not in {None, "never"},
        message="the dashboard never loaded its figures",
    )
    wait.until(
        lambda d: all(f"{pool}@" in (text_of(d, "#kiln-pools") or "") for pool in ("high", "default")),
        message="the pools table never listed a worker of each pool",
    )
    for queue in ("high", "default"):
        card = browser.find_element(By.CSS_SELECTOR, f'[data-queue="{queue}"]')
        level = card.find_element(By.CSS_SELECTOR, '[data-field="level"]').text
        assert level in {"healthy", "warning", "critical"}
        assert card.find_element(By.CSS_SELECTOR, '[data-field="depth"]').text.isdigit()
    assert browser.find_element(By.ID, "kiln-broker").text == "reachable"

    # An operator typing a new pool size: the refreshes go on around the box and never replace it.
    box = browser.find_element(By.CSS_SELECTOR, "#kiln-pools input[name=processes]")
    box.click()
    box.send_keys(Keys.BACKSPACE * 3, "7")
    seen = {text_of(browser, "#kiln-updated")}

    def refreshed_twice(driver: webdriver.Chrome) -> bool:
        seen.add(text_of(driver, "#kiln-updated"))
        return len(seen) >= 3

    wait.until(refreshed_twice, message="the dashboard stopped refreshing")
    assert box.get_attribute("value") == "7"  # the same element, still holding what was typed
    assert browser.switch_to.active_element == box
    screenshot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_rejected_uploads_show_by_kind_and_hour_apart_from_the_failed_jobs(
    stack: Stack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    token = stack.manage("create_api_token", "admin").stdout.strip().splitlines()[-1]
    failed_before = json.loads(stack.manage("jobs", "status", "--json").stdout)["failed"]
    for name, data in (
        ("layers.psd", corpus.psd_bytes()),
        ("notes.jpg", corpus.text_named_jpg()),
        ("cut.jpg", corpus.truncated_jpeg()),
    ):
        status, answer = stack.upload(token, name, data)
        assert status == 202, answer

    browser.get(f"{stack.base_url}/admin/jobs/dashboard/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    kinds = ("format", "not_image", "truncated")
    WebDriverWait(browser, 40, ignored_exceptions=RETRY_ON).until(
        lambda d: all(kind in (text_of(d, "#kiln-rejections") or "") for kind in kinds),
        message="the dashboard never listed the three rejected uploads by kind",
    )
    rows = {
        row.find_element(By.CSS_SELECTOR, "td").text: [
            cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#kiln-rejections tr")
    }
    for kind in kinds:
        assert int(rows[kind][1]) >= 1, f"{kind}: counted in the last hour"
        per_hour = [int(cell) for cell in rows[kind][3:] if cell.isdigit()]  # a zero shows as "·"
        assert sum(per_hour) >= 1, f"{kind}: counted in the clock hours"
    assert len(rows["all"]) == 3 + 24  # kind, last hour, 24 h, then one column per hour
    assert int(text_of(browser, "#kiln-rejected") or 0) >= 3
    # A rejected upload fails its image, not its job: the failed-jobs figure is what it was before.
    assert text_of(browser, "#kiln-failed") == str(failed_before)
    screenshot = tmp_path / "dashboard-rejections.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    # On a phone the 24 hour columns and the pools scroll inside their tables; the page never sideways.
    browser.set_window_size(390, 844)
    browser.refresh()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: text_of(d, "#kiln-rejected") not in (None, "…"), message="the dashboard did not load"
    )
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(tmp_path / "dashboard-phone.png"))


def test_the_charts_show_a_job_on_the_dashboard_the_tasks_page_and_its_own_page(
    stack: Stack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # A job published by a Kiln process and run by worker-default: both count it.
    sent = stack.manage(
        "shell", "-c", "from config.celery import app; from jobs.history import recorder\n"
        "app.send_task('jobs.tasks.alerts_check'); recorder.flush()",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    browser.get(f"{stack.base_url}/admin/login/?next=/admin/jobs/tasks/%3Fwindow%3D1h")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    def listed(driver: webdriver.Chrome) -> bool:
        if "jobs.tasks.alerts_check" in (text_of(driver, "#content") or ""):
            return True
        driver.refresh()
        return False

    WebDriverWait(browser, 60, poll_frequency=1, ignored_exceptions=RETRY_ON).until(
        listed, message="the tasks page never listed the alert check"
    )
    browser.find_element(By.LINK_TEXT, "jobs.tasks.alerts_check").click()
    WebDriverWait(browser, 20, ignored_exceptions=RETRY_ON).until(
        lambda d: "Task jobs.tasks.alerts_check" in (text_of(d, "h1") or ""), message="no task page"
    )

    # The tasks page lists a task from its first count (the publish): the run-time histogram has a bar
    # once worker-default ended the job.
    def ended(driver: webdriver.Chrome) -> bool:
        if driver.find_elements(By.CSS_SELECTOR, "svg.chart rect"):
            return True
        driver.refresh()
        return False

    WebDriverWait(browser, 60, poll_frequency=1, ignored_exceptions=RETRY_ON).until(
        ended, message="the task page never drew the job's run time"
    )
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map((svg) => svg.getBoundingClientRect().width)"
    )
    assert len(sizes) == 4, sizes  # three over time, and the histogram
    assert all(width > 250 for width in sizes), sizes
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(tmp_path / "task-page.png"))

    browser.get(f"{stack.base_url}/admin/jobs/dashboard/?window=1h")
    WebDriverWait(browser, 20, ignored_exceptions=RETRY_ON).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.chart")) == 8,
        message="the dashboard drew no charts",
    )
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.chart-series-0"), "no finished job drawn"
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(tmp_path / "dashboard-charts.png"))
