"""The jobs dashboard in headless Chromium against the running stack: live figures from both pools."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import RETRY_ON, text_of
from tests.support.stack import ADMIN_PASSWORD, Stack

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
