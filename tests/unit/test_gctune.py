"""qshpc.runtime.gctune.uncollected: imports with the collector off, then frozen."""

from __future__ import annotations

import gc

import pytest

from qshpc.runtime.gctune import uncollected


def test_the_collector_is_off_inside_and_what_was_made_is_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QSHPC_GC", raising=False)
    assert gc.isenabled()
    before = gc.get_freeze_count()
    try:
        with uncollected():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
    finally:
        gc.unfreeze()
        gc.enable()


def test_an_error_inside_turns_the_collector_on_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QSHPC_GC", raising=False)
    try:
        with pytest.raises(ImportError), uncollected():
            raise ImportError("no such module")
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize("value", ["default", "not-a-number"])
def test_gc_default_or_a_bad_setting_changes_nothing(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_GC", value)
    before = gc.get_freeze_count()
    with uncollected():
        assert gc.isenabled()
    assert gc.get_freeze_count() == before
