"""Fixtures shared by tests/unit (requested by the modules that need them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def fresh_aer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``QSHPC_AER_DEVICE`` and the Aer layer's caches empty, before and after the test.

    A module of Aer tests requests it for each of its tests with
    ``pytestmark = pytest.mark.usefixtures("fresh_aer")``.
    """
    import qshpc.aer

    monkeypatch.delenv("QSHPC_AER_DEVICE", raising=False)
    qshpc.aer.reset_caches()
    yield
    qshpc.aer.reset_caches()
