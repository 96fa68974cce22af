"""The image page in headless Chromium (Debian's chromium + chromium-driver) against the running stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import TiffImagePlugin
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import RETRY_ON, in_page, text_of
from tests.support.stack import ADMIN_PASSWORD, Stack
from tests.thumbnails import corpus

pytestmark = pytest.mark.processes


def photos(folder: Path) -> list[Path]:
    """A landscape photo with a camera's EXIF, a portrait one without, a small one, and a text file."""
    exif = corpus.camera_exif()
    exif.get_ifd(0x8769)[0x829D] = TiffImagePlugin.IFDRational(28, 10)  # FNumber: f/2.8
    contents = {
        "IMG_0001.JPG": corpus.jpeg(corpus.photo((3000, 2000)), exif=exif),
        "IMG_0002.JPG": corpus.jpeg(corpus.photo((1600, 2400))),
        "IMG_0003.JPG": corpus.jpeg(corpus.photo((800, 600))),
        "notes.jpg": b"this is not a photograph\n" * 10,
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents]


def ingest(stack: Stack, report: str, paths: list[Path]) -> tuple[int, list[int]]:
    """The files put into a new report by the shell command, processed by the stack's workers: the
    report's id and the images' ids."""
    result = stack.manage(
        "thumbnails", "ingest", "--report", report, "--wait", "--timeout", "90", *map(str, paths)
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [line[2] for line in lines] == ["ready"] * (len(paths) - 1) + ["failed"], result.stdout
    found = stack.manage(
        "shell",
        "--no-imports",
        "-c",
        f"from reports.models import Report; print(Report.objects.get(name={report!r}).pk)",
    )
    return int(found.stdout.strip()), [int(line[1]) for line in lines]


def log_in(browser: webdriver.Chrome, stack: Stack, then: str) -> None:
    browser.get(f"{stack.base_url}/accounts/login/?next={then}")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.current_url.endswith(then) and text_of(d, "h2"),
        message=f"the page after logging in did not open; at {browser.current_url}",
    )


def on_page(browser: webdriver.Chrome, path: str, heading: str) -> None:
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.current_url.endswith(path) and text_of(d, "h2") == heading,
        message=f"expected {heading!r} at {path}; at {browser.current_url}, heading {text_of(browser, 'h2')!r}",
    )


def preview_box(browser: webdriver.Chrome) -> dict:
    """The preview once loaded: its decoded width, its box on screen, and the viewport."""
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: in_page(
            d, "const i = document.querySelector('#preview img'); return i && i.complete && i.naturalWidth;"
        ),
        message="the preview did not load",
    )
    return in_page(
        browser,
        """const i = document.querySelector('#preview img'), r = i.getBoundingClientRect();
        return {natural: i.naturalWidth, naturalHeight: i.naturalHeight, left: r.left, right: r.right,
                bottom: r.bottom, width: r.width, height: r.height, innerWidth: innerWidth,
                innerHeight: innerHeight, scrollWidth: document.documentElement.scrollWidth};""",
    )


def facts(browser: webdriver.Chrome, table: str) -> dict[str, str]:
    return in_page(
        browser,
        "return Object.fromEntries([...document.querySelectorAll(arguments[0] + ' tr')]"
        ".map(r => [r.querySelector('th').innerText, r.querySelector('td').innerText]));",
        table,
    )


def test_the_image_page_shows_the_preview_and_its_facts_steps_through_the_report_and_deletes(
    stack: Stack, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    report, (first, second, third, broken) = ingest(stack, "Image page browser test", photos(tmp_path))
    page = f"/reports/{report}/images/{{}}/"
    log_in(browser, stack, page.format(first))

    # The 2048 px preview, whole on screen at 1366 x 900: within the page's width and the window's height.
    box = preview_box(browser)
    assert browser.save_screenshot(str(tmp_path / "image-page.png"))
    assert box["natural"] == 2048
    assert box["left"] >= 0, box
    assert box["right"] <= box["innerWidth"], box
    assert box["bottom"] <= box["innerHeight"], box
    assert box["width"] > 800, box  # and not shrunk to a thumbnail either
    assert box["scrollWidth"] <= box["innerWidth"], box
    assert facts(browser, "#photo-facts") == {
        "Camera": "Canon EOS R5",
        "Lens": "RF24-70mm F2.8 L IS USM",
        "Exposure": "1/250 s",
        "Aperture": "f/2.8",
        "ISO": "ISO 400",
        "Focal length": "50 mm",
        "Taken": "1 May 2024, 12:34",
        "GPS position": "recorded",
    }
    file_facts = facts(browser, "#file-facts")
    browser.execute_script("document.querySelector('.facts').scrollIntoView()")
    assert browser.save_screenshot(str(tmp_path / "image-page-facts.png"))
    assert file_facts["Dimensions"] == "3,000 × 2,000"
    assert file_facts["Original name"] == "IMG_0001.JPG"
    assert text_of(browser, ".image-head nav .place") == "1 of 4"
    assert browser.find_elements(By.ID, "previous") == []

    # The right arrow goes to the next image; a portrait preview fits the window's height.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    on_page(browser, page.format(second), "IMG_0002.JPG")
    box = preview_box(browser)
    assert browser.save_screenshot(str(tmp_path / "image-page-portrait.png"))
    assert (box["natural"], box["naturalHeight"]) == (1365, 2048)
    assert box["bottom"] <= box["innerHeight"], box  # shrunk to the window's height, its shape kept
    assert abs(box["width"] / box["height"] - 1365 / 2048) < 0.01, box
    assert facts(browser, "#photo-facts") == {"GPS position": "none"}

    # The links go both ways, the left arrow too; the last image, a failed one, says why and has no next.
    browser.find_element(By.ID, "next").click()
    on_page(browser, page.format(third), "IMG_0003.JPG")
    browser.find_element(By.ID, "next").click()
    on_page(browser, page.format(broken), "notes.jpg")
    assert browser.find_elements(By.ID, "next") == []
    assert text_of(browser, "#preview").startswith("This image could not be processed: ")
    assert browser.save_screenshot(str(tmp_path / "image-page-failed.png"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    on_page(browser, page.format(third), "IMG_0003.JPG")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    on_page(browser, page.format(second), "IMG_0002.JPG")
    browser.find_element(By.ID, "previous").click()
    on_page(browser, page.format(first), "IMG_0001.JPG")

    # Deleting asks first; confirming goes back to the report, which holds one image fewer.
    browser.get(f"{stack.base_url}{page.format(third)}")
    browser.find_element(By.ID, "delete").click()
    on_page(browser, f"{page.format(third)}delete/", "Delete IMG_0003.JPG?")
    assert browser.save_screenshot(str(tmp_path / "image-delete-confirm.png"))
    browser.find_element(By.ID, "confirm-delete").click()
    on_page(browser, f"/reports/{report}/", "Image page browser test")
    assert "Deleted IMG_0003.JPG." in text_of(browser, ".messages")
    assert in_page(browser, "return document.querySelectorAll('[data-image-id]').length") == 3
    gone = browser.execute_script("return fetch(arguments[0]).then(r => r.status)", page.format(third))
    assert gone == 404
    # The second image's next is the failed one now.
    browser.get(f"{stack.base_url}{page.format(second)}")
    assert text_of(browser, ".image-head nav .place") == "2 of 3"
    assert browser.find_element(By.ID, "next").get_attribute("href").endswith(page.format(broken))

    # Deleting the report asks first too, saying how many images go; then the reports list says it is done.
    browser.get(f"{stack.base_url}/reports/{report}/delete/")
    on_page(browser, f"/reports/{report}/delete/", "Delete the report Image page browser test?")
    assert "It holds 3 images" in text_of(browser, ".confirm")
    assert browser.save_screenshot(str(tmp_path / "report-delete-confirm.png"))
    browser.find_element(By.ID, "confirm-delete").click()
    WebDriverWait(browser, 30, ignored_exceptions=RETRY_ON).until(
        lambda d: d.current_url.endswith("/reports/") and text_of(d, ".messages"),
        message=f"the reports list did not open after deleting the report; at {browser.current_url}",
    )
    assert text_of(browser, ".messages") == "Deleted the report Image page browser test and 3 images."
    gone = browser.execute_script("return fetch(arguments[0]).then(r => r.status)", page.format(first))
    assert gone == 404
