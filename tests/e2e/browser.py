"""Headless Chromium (Debian's package) through Playwright, for the end-to-end tests that use a real browser."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run")


@contextmanager
def chromium(playwright, *args: str) -> Iterator:
    """A Playwright Browser on CHROMIUM with ARGS and `args`, closed afterwards."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *args])
    try:
        yield browser
    finally:
        browser.close()


@contextmanager
def playwright() -> Iterator:
    """Playwright's sync API, or the test fails saying how to get it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: it is in requirements.txt (scripts/bootstrap installs it)",
                    pytrace=False)
    with sync_playwright() as p:
        yield p
