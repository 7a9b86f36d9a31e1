"""A headless Chromium for the report tests (``make test`` installs Debian's package)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.browser import Browser, chromium


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One browser for the session; each test opens its own tab."""
    if chromium() is None:
        msg = "no chromium on PATH: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    b = Browser(timeout=120)
    yield b
    b.close()
