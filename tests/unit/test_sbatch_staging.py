"""Staging a working directory into the job at submit time. No cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.errors import UserError
from qshpc.submit.staging import check_size, stage, staged_size


def test_stage_skips_caches_git_and_the_job_store(tmp_path: Path) -> None:
    src = tmp_path / "work"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / "jobs" / "j1").mkdir(parents=True)  # $QSHPC_HOME inside the working dir
    (src / "prog.py").write_text("x = 1\n")
    (src / "pkg" / "m.py").write_text("y = 2\n")
    (src / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"0" * 10)
    (src / ".git" / "HEAD").write_text("ref")
    (src / "jobs" / "j1" / "job.h5").write_bytes(b"0" * 100)
    (src / "link").symlink_to("/etc")
    dest = src / "jobs" / "j1" / "program"
    stage(src, dest, exclude=[src / "jobs"])
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "link",
        "pkg",
        "pkg/m.py",
        "prog.py",
    ]
    assert (dest / "link").is_symlink()
    assert staged_size(src, [src / "jobs"]) == len("x = 1\n") + len("y = 2\n")


def test_too_large_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"0" * 2048)
    with pytest.raises(UserError, match=r"working_dir .* holds more than"):
        check_size(tmp_path, limit=1024)
    with pytest.raises(UserError, match="holds more than"):
        stage(tmp_path, tmp_path.parent / "dest-never", limit=1024)
    assert not (tmp_path.parent / "dest-never").exists()
