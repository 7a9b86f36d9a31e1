"""A rank's BLAS thread count (``qshpc.runtime.blas``): its own cores, unless the user chose."""

from __future__ import annotations

import sys

import pytest

from qshpc.runtime.blas import USER_VARS, limit_blas_threads


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in USER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "numpy", raising=False)  # as before numpy loads
    return monkeypatch


def test_set_to_the_rank_cores(clean: pytest.MonkeyPatch) -> None:
    import os

    assert limit_blas_threads(3)
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3" and os.environ["MKL_NUM_THREADS"] == "3"


@pytest.mark.parametrize("name", USER_VARS)
def test_the_users_own_count_wins(clean: pytest.MonkeyPatch, name: str) -> None:
    import os

    clean.setenv(name, "8")
    assert not limit_blas_threads(1)
    assert os.environ[name] == "8"
    assert all(os.environ.get(v) in (None, "8") for v in USER_VARS)


def test_too_late_once_numpy_is_loaded(clean: pytest.MonkeyPatch) -> None:
    import os

    clean.setitem(sys.modules, "numpy", object())
    assert not limit_blas_threads(2)
    assert "OPENBLAS_NUM_THREADS" not in os.environ
