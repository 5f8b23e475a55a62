"""Debian's Chromium, headless, driven by Playwright: the one launcher of the browser tests.

Chromium is /usr/bin/chromium from the distribution (`make test` and .ci/run
install it when they can); Playwright's own browser downloads are never used.
A missing browser fails the test with a message rather than skipping it.
Screenshots go to var/test/screenshots/ (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import BASE_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = BASE_DIR / "var" / "test" / "screenshots"


@contextmanager
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A launched browser, closed afterwards; fails the test when it cannot start."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's browser with "
            "`apt-get update && apt-get install -y chromium` (.ci/run does this in CI)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]'", pytrace=False)
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM
    # calls (setup, checks) are synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # ORM calls inside Playwright's block ran in a context (greenlet) of their own,
            # with a connection of their own: close it, or PostgreSQL cannot drop the database.
            connections.close_all()
