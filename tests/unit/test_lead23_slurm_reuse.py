"""A Slurm id that several jobs had (ids restart with a new cluster): the newest job is meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.jobs.paths import resolve_job_dir


def _job(root: Path, name: str, slurm_id: str | None, had: list[str] | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "job.h5").write_bytes(b"")
    if slurm_id is not None:
        (d / "slurm_job_id").write_text(f"{slurm_id}\n")
    if had is not None:
        (d / "slurm_job_ids").write_text("".join(f"{s}\n" for s in had))
    return d


def test_a_reused_slurm_id_names_the_newest_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_HOME", str(tmp_path))
    root = tmp_path / "jobs"
    for month in ("04", "07", "12", "09"):  # made in another order than their ids sort
        _job(root, f"2026{month}01-120000-abcdef", "5")
    _job(root, "20261202-120000-aaaaaa", None)  # no Slurm id: never matched
    assert resolve_job_dir("5").name == "20261201-120000-abcdef"


def test_a_current_id_wins_over_an_id_a_newer_job_had_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_HOME", str(tmp_path))
    root = tmp_path / "jobs"
    _job(root, "20261101-120000-abcdef", "7", ["7"])
    _job(root, "20261201-120000-abcdef", "9", ["7", "9"])  # resumed: 7 then 9
    _job(root, "20261130-120000-abcdef", "3", ["7", "3"])
    assert resolve_job_dir("7").name == "20261101-120000-abcdef"
    (root / "20261101-120000-abcdef" / "slurm_job_id").unlink()
    assert resolve_job_dir("7").name == "20261201-120000-abcdef"  # the newest that had it
