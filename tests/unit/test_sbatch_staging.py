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


def test_a_virtual_environment_is_not_staged_and_a_large_folder_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """review28 F17: a 300 MB folder with a .venv went into every job and array element
    without a word."""
    from qshpc.submit.staging import warn_size

    src = tmp_path / "work"
    (src / ".venv" / "lib").mkdir(parents=True)
    (src / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / ".venv" / "lib" / "big.py").write_text("z" * 5000)
    (src / "env2").mkdir()  # a folder named otherwise, but a venv all the same
    (src / "env2" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / "prog.py").write_text("x = 1\n")
    dest = tmp_path / "staged"
    stage(src, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["prog.py"]
    assert staged_size(src) == len("x = 1\n")
    warn_size(src, 10 << 20)
    assert capsys.readouterr().err == ""
    warn_size(src, 300 << 20, copies=4)
    err = capsys.readouterr().err
    assert "staging 300 MB" in err and "1200 MB in all" in err and "--working-dir" in err


def test_a_program_inside_a_folder_left_out_is_refused_in_words(tmp_path: Path) -> None:
    """review29 F6: it was refused after the copy, as an entrypoint "not found"."""
    from qshpc.submit.staging import check_entry_staged

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    with pytest.raises(UserError, match=r"lies in .*proj, a virtual environment"):
        check_entry_staged(tmp_path, Path("proj/prog.py"))
    with pytest.raises(UserError, match=r"lies in .*\.git, a folder qshpc never stages"):
        check_entry_staged(tmp_path, Path(".git/hooks/prog.py"))
    check_entry_staged(tmp_path, Path("prog.py"))
    check_entry_staged(tmp_path, Path("sub/prog.py"))
