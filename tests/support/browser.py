"""Reading a page in headless Chromium while it may be navigating to the next one.

An element handle found on a page and read after a click replaced that page fails: as a stale element, or,
in Chromium, as a bare WebDriverException ("Node with given id does not belong to the document"). The
helpers here read the page in one script call, so what they read always comes from one document.
"""

from __future__ import annotations

from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)

# For WebDriverWait: what a look at a page that is just going away can raise.
RETRY_ON = (NoSuchElementException, StaleElementReferenceException, JavascriptException)
# What Chromium answers when a command meets a document that is being replaced by the next one.
NAVIGATING = ("does not belong to the document", "Execution context was destroyed", "Cannot find context")


def in_page(driver: webdriver.Chrome, script: str, *args: object) -> object:
    """Run script in the current page; None when the page was being replaced at that moment (ask again)."""
    try:
        return driver.execute_script(script, *args)
    except WebDriverException as error:
        if any(sign in str(error) for sign in NAVIGATING):
            return None
        raise


def text_of(driver: webdriver.Chrome, selector: str) -> str | None:
    """The trimmed text of the first element matching selector (None if there is none yet)."""
    return in_page(
        driver,
        "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;",
        selector,
    )


def count(driver: webdriver.Chrome, selector: str) -> int | None:
    """How many elements match selector (None while the page is being replaced)."""
    return in_page(driver, "return document.querySelectorAll(arguments[0]).length;", selector)
