"""A real Chromium for browser tests: Debian's `chromium` driven by Playwright for Python.

Playwright's own browser download is not used (it needs a network these machines may not have): the
browser is the one at `CORTEX_TEST_CHROMIUM` (default `/usr/bin/chromium`, `apt-get install chromium`).
Without it a browser test is skipped with the reason; with `CORTEX_REQUIRE_BACKENDS=1` (set by `.ci/run`,
which installs it) the skip is a failure, as for the engines in tests/engines.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.engines import required

DEFAULT_CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str:
    """The Chromium executable, or skip (fail under CORTEX_REQUIRE_BACKENDS=1) when there is none."""
    path = os.environ.get("CORTEX_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    reason = f"no Chromium at {path}: apt-get install chromium, or set CORTEX_TEST_CHROMIUM"
    if required():
        pytest.fail(f"{reason} (CORTEX_REQUIRE_BACKENDS=1: the browser is required here)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright `Browser`), closed afterwards."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
