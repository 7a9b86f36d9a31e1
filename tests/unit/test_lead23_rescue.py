"""review29 F12c: a save_result that the store refuses again replaces the result rescued
before (one file, the latest, as in the store), never another's file of that name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qshpc.store import load_arguments
from qshpc.store.rescue import rescue_result


def test_a_later_rescue_replaces_the_earlier_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    job = tmp_path / "jobs" / "20261205-000000-abcdef"
    first = rescue_result(job, {"i": 1})
    second = rescue_result(job, {"i": 2})
    assert first == second == work / f"qshpc-result-{job.name}.h5"
    assert load_arguments(second)["result"] == {"i": 2}
    assert sorted(os.listdir(work)) == [second.name]


def test_a_link_of_that_name_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    job = tmp_path / "jobs" / "20261205-000000-abcdef"
    planted = work / f"qshpc-result-{job.name}.h5"
    planted.symlink_to(tmp_path / "elsewhere.h5")
    path = rescue_result(job, {"i": 1})
    assert path == work / f"qshpc-result-{job.name}-2.h5"
    assert planted.is_symlink() and not (tmp_path / "elsewhere.h5").exists()
