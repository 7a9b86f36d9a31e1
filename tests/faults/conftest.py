"""Fixtures the fault hunts share."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are root's alone); what a test made
    read-only in it is made writable again before it is removed."""
    path = Path(tempfile.mkdtemp(prefix="qshpc-open-dir-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir() and not sub.is_symlink():
                os.chmod(sub, 0o755)
        shutil.rmtree(path, ignore_errors=True)
