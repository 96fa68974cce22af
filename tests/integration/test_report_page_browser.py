"""The report page in headless Chromium (Debian's chromium + chromium-driver) against the running stack."""

from __future__ import annotations

import re
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
    # Refused in the page before a byte is sent (KILN_UPLOAD_MAX_MB is 25): the others carry on.
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as out:
        out.truncate(26 * 1024 * 1024)
    files.append(huge)

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

    # Mark this page: the upload goes through the page's script, file by file, without a reload.
    browser.execute_script("window.kilnNoReload = true;")
    # Choosing the files starts the upload: there is no button to press.
    assert not browser.find_element(By.CSS_SELECTOR, "form[enctype] button").is_displayed()
    # With the thumbnail queue paused, the tiles say so (not "processing…").
    assert "paused" in stack.manage("jobs", "pause", "high").stdout
    try:
        browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(str(f) for f in files))
        WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
            lambda d: count(d, "[data-image-id]") == 4,
            message="the four accepted files did not appear as tiles",
        )
        WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
            lambda d: count(d, '.wait[data-reason="paused"]') == 4,
            message="the waiting tiles did not say their queue is paused",
        )
        assert "paused by an operator" in text_of(browser, ".wait")
        assert browser.save_screenshot(str(tmp_path / "report-page-paused.png"))
        # One of them times out in a worker (as a huge file would): a failure a retry may cure.
        broken_id = browser.find_element(By.CSS_SELECTOR, '.tile:has([title="broken.jpg"])').get_attribute(
            "data-image-id"
        )
        marked = stack.manage(
            "shell",
            "-c",
            "from thumbnails.services import image_mark_failed; "
            f"image_mark_failed(image_id={broken_id}, reason='processing took longer than the 120 s time "
            "limit', kind='too_slow')",
        )
        assert marked.returncode == 0, marked.stderr
        # Its job is still queued and would decode the file after all: drop the queue, and send the three
        # photos again, so the only failure the page sees is the time limit.
        assert "dropped" in stack.manage("jobs", "clear", "high", "--yes").stdout
        photo_ids = [
            tile.get_attribute("data-image-id")
            for tile in browser.find_elements(By.CSS_SELECTOR, ".tile")
            if tile.get_attribute("data-image-id") != broken_id
        ]
        sent = stack.manage("thumbnails", "regenerate", *photo_ids)
        assert sent.returncode == 0, sent.stderr
    finally:
        stack.manage("jobs", "resume", "high")
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: re.fullmatch(
            r"5 of 5 files · ([\d.]+) MB of \1 MB · 1 refused", text_of(d, "#uploads-summary") or ""
        ),
        message=f"the overall upload line did not settle: {text_of(browser, '#uploads-summary')!r}",
    )
    states = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#uploads .state")]
    assert states == ["uploaded"] * 4 + ["larger than 25 MB"], states
    # The refused file is out of the totals: the megabytes are those of the four sent files.
    sent = sum(path.stat().st_size for path in files if path != huge) / 1048576
    assert f"{sent:.1f} MB of {sent:.1f} MB" in text_of(browser, "#uploads-summary")
    # In the order they were chosen, as the report lists them.
    names = [e.get_attribute("title") for e in browser.find_elements(By.CSS_SELECTOR, "#images .name")]
    assert names == ["photo-0.jpg", "photo-1.jpg", "photo-2.jpg", "broken.jpg"], names
    assert browser.execute_script("return document.getElementById('uploads-bar').value") == 1

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
    # Each thumbnail opens the image's own page in the site, not the bare JPEG.
    links = [img.find_element(By.XPATH, "..").get_attribute("href") for img in ready]
    ids = [
        tile.get_attribute("data-image-id")
        for tile in browser.find_elements(By.CSS_SELECTOR, '[data-status="ready"]')
    ]
    assert links == [f"{browser.current_url.split('#')[0]}images/{image_id}/" for image_id in ids]
    failed = browser.find_element(By.CSS_SELECTOR, '[data-status="failed"]')
    assert "broken.jpg" in failed.text
    assert "took longer than" in failed.find_element(By.CLASS_NAME, "reason").text
    # The admin may retry, on a tile the script drew as on one the server drew.
    assert failed.find_element(By.CSS_SELECTOR, "form.retry button").text == "Retry"
    # Tiles of even size: every picture area is the same square.
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('.tile .picture')].map(p => [p.offsetWidth, p.offsetHeight]);"
    )
    assert len({tuple(size) for size in sizes}) == 1, sizes
    assert sizes[0][0] == sizes[0][1], sizes
    # The header counted the tiles as they changed, without a reload.
    assert browser.find_element(By.ID, "report-counts").text == "3 ready · 1 failed"

    screenshot = tmp_path / "report-page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    # The retry from a script-drawn tile posts with its token and the image is queued again; this time the
    # worker sees it is no image at all, and no Retry is offered for a file that can never succeed.
    browser.find_element(By.CSS_SELECTOR, '[data-status="failed"] form.retry button').click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: "is being processed again" in (text_of(d, ".messages") or ""),
        message="the retry did not come back with its message",
    )
    WebDriverWait(browser, 60, ignored_exceptions=RETRY_ON).until(
        lambda d: "not an image" in (text_of(d, '[data-status="failed"] .reason') or ""),
        message="the retried file did not fail again as no image",
    )
    assert count(browser, "form.retry") == 0

    # A phone-width screen: two tiles a row, nothing wider than the screen.
    browser.set_window_size(390, 844)
    browser.refresh()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(lambda d: count(d, "[data-image-id]") == 4)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    tops = browser.execute_script(
        "return [...document.querySelectorAll('.tile')].map(t => t.getBoundingClientRect().top);"
    )
    assert tops[0] == tops[1] != tops[2], tops
    assert browser.save_screenshot(str(tmp_path / "report-page-phone.png"))
