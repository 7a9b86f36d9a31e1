"""review30 F8: what a full disk says when the file system is small, or out of inodes.

On b6f478f a job on a 300 KB ``QSHPC_HOME`` was told "every result committed before is
kept ... resume the job" though it never started, and not what room a run needs; a
cache out of inodes (``df -h`` showing room) said ``[Errno 28] No space left on device``.
Real full file systems: tmpfs mounts of the tests' own (skipped where none can be made).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import run_cli, tmpfs

PROGRAM = (
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef f(x):\n    return 2 * x\n"
    "save_result(sum(get([f(i) for i in range(N)])))\n"
)


def _program(tmp_path: Path, n: int) -> Path:
    prog = tmp_path / "p.py"
    prog.write_text(PROGRAM.replace("N", str(n)))
    return prog


def _refused(*args: str, home: Path) -> str:
    """``qshpc ARGS`` with ``QSHPC_HOME=home``, which must exit 2: its one error line."""
    out = run_cli(*args, "--workers", "1", env={"QSHPC_HOME": str(home)})
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("qshpc: error:")]
    assert "no space left on device" in line and "(open for writing)" in line
    assert "for what the run adds), and 1 MiB more for its reserve (job.reserve)" in line
    return line


def test_a_job_that_never_started_names_the_room_a_run_needs(tmp_path: Path) -> None:
    prog = _program(tmp_path, 4)
    with tmpfs(tmp_path / "small", "size=300k") as mnt:
        line = _refused("run", str(prog), home=mnt / "home")
    assert line.endswith("then run the program again: this job never started, nothing was computed")
    assert "--resume" not in line


def test_a_resume_on_a_full_disk_is_told_to_resume(tmp_path: Path) -> None:
    from tests.conftest import FAIL, FAIL_AT_END

    prog = _program(tmp_path, 4)
    prog.write_text(prog.read_text() + FAIL_AT_END)  # FAILED: a job to resume
    with tmpfs(tmp_path / "small", "size=600k") as mnt:
        first = run_cli("run", str(prog), env={"QSHPC_HOME": str(mnt / "home"), **FAIL})
        assert first.returncode == 1, first.stderr
        (job,) = (mnt / "home" / "jobs").iterdir()
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(bytes(st.f_bavail * st.f_frsize - (120 << 10)))
        line = _refused("run", str(prog), "--resume", job.name, home=mnt / "home")
    assert line.endswith(
        "resume the job (qshpc run PROGRAM --resume JOB): every result committed before is kept"
    )
    assert "never started" not in line


def test_a_cache_out_of_inodes_says_so(tmp_path: Path) -> None:
    # 100 MB: over the room the cache leaves to the job stores (64 MiB), so that the
    # inodes run out first; a tmpfs takes memory only for what is written
    prog = _program(tmp_path, 60)
    with tmpfs(tmp_path / "few inodes", "size=100m,nr_inodes=40") as mnt:
        env = {"QSHPC_HOME": str(tmp_path / "home"), "QSHPC_CACHE_DIR": str(mnt / "cache")}
        out = run_cli("run", str(prog), "--cache", "--workers", "2", env=env)
        assert out.returncode == 0, out.stderr
        said = [ln for ln in out.stderr.splitlines() if ln.startswith("qshpc: cache:")]
        assert said, out.stderr
        for line in said:
            assert "no free inodes" in line and "inodes used, though" in line, line
            assert "df -i" in line and "No space left" not in line, line
