"""The report page in headless Chromium (Debian's chromium + chromium-driver) against the running stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import RETRY_ON, count, text_of
from tests.support.stack import ADMIN_PASSWORD, Stack
from tests.thumbnails.images import jpeg_bytes

pytestmark = pytest.mark.processes


def test_a_user_logs_in_uploads_images_and_sees_thumbnails_appear(
    stack: Stack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    files = []
    for n, color in enumerate([(220, 40, 40), (40, 160, 60), (30, 60, 200)]):
        path = tmp_path / f"photo-{n}.jpg"
        path.write_bytes(jpeg_bytes(1600, 1200, color))
        files.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_text("this is not a photograph\n" * 10)
    files.append(broken)

    browser.get(f"{stack.base_url}/reports/")
    assert "/accounts/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # The click submits the login form; the report page loads after it returns (slow on a busy machine).
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.find_element(By.NAME, "name"),
        message=f"the reports page did not open after logging in; at {browser.current_url}",
    ).send_keys("Browser test")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # Read the heading in one script call: an element handle found on the form's page and read after the
    # report's page replaced it fails in Chromium with "Node with given id does not belong to the document".
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: text_of(d, "h2") == "Browser test",
        message=f"the new report's page did not open; at {browser.current_url}",
    )

    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(str(f) for f in files))
    browser.find_element(By.CSS_SELECTOR, "form[enctype] button").click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: count(d, "[data-image-id]") == 4,
        message="the four uploaded files did not appear as tiles",
    )
    # Mark this page: if the tiles change without a reload, the mark is still there at the end.
    browser.execute_script("window.kilnNoReload = true;")

    WebDriverWait(browser, 90, poll_frequency=0.5, ignored_exceptions=RETRY_ON).until(
        lambda d: count(d, '[data-status="pending"]') == 0,
        message="some tiles stayed pending: the page did not pick up the finished images",
    )
    assert browser.execute_script("return window.kilnNoReload === true;")
    ready = browser.find_elements(By.CSS_SELECTOR, '[data-status="ready"] img')
    assert len(ready) == 3
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            for img in ready
        )
    )
    assert {browser.execute_script("return arguments[0].naturalWidth", img) for img in ready} == {400}
    links = [img.find_element(By.XPATH, "..").get_attribute("href") for img in ready]
    assert all("/media/renditions/" in link for link in links)
    failed = browser.find_element(By.CSS_SELECTOR, '[data-status="failed"]')
    assert "broken.jpg" in failed.text
    assert failed.find_element(By.CLASS_NAME, "reason").text.strip()
    # The header counted the tiles as they changed, without a reload.
    assert browser.find_element(By.ID, "report-counts").text == "3 ready · 1 failed"

    screenshot = tmp_path / "report-page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
