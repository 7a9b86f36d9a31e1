"""review50's LOW findings (session 28, fixO): a job removed on a full disk leaves nothing
behind (F4); a huge or binary JSON arguments file is refused before it is read (F7); the
report's default file in the job folder is never a FIFO or a link written through (F8);
``--job-dir`` through another user's link in /tmp is refused (F9); ``$QSHPC_HOME/steps`` is
held to the store's rule (fixL's left item).

Another user's file or link is a real one given to another uid (4242, no account needed:
the owner is what is checked), and a full disk is a real tmpfs, so those tests need root.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, tmpfs
from tests.faults.test_bad_input import no_internals

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="another uid, or a tmpfs, needs root")
THEIRS = 4242

PROG = textwrap.dedent(
    """
    from qshpc import distribute_task, get, save_result

    @distribute_task()
    def sq(i):
        return i * i

    save_result(get([sq(i) for i in range(3)]))
    """
)

# A module the workers preload (QSHPC_PRELOAD): it holds them until rank 0 removed the job
# folder (or 5 s): their logs are opened after the removal, as in review50's 2 runs of 3.
LATE_WORKER = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    jobs = Path(os.environ["QSHPC_HOME"]) / "jobs"
    made = lambda: jobs.is_dir() and any(jobs.iterdir())
    end = time.monotonic() + 30
    while not made() and time.monotonic() < end:
        time.sleep(0.02)
    end = time.monotonic() + 5
    while made() and time.monotonic() < end:
        time.sleep(0.02)
    """
)


@root_only
def test_a_job_removed_on_a_full_disk_leaves_no_worker_logs(tmp_path: Path) -> None:
    """review50 F4: on main aefb223 the workers' logs made ``J/logs/rank-{1,2}.out`` again
    after rank 0 removed the folder of a job that could not start (no inodes left)."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "fixo_late_worker.py").write_text(LATE_WORKER)
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    with tmpfs(tmp_path / "disk", "size=64m,nr_inodes=9") as disk:
        home = disk / "h"
        home.mkdir(mode=0o700)
        env = {
            "QSHPC_HOME": str(home),
            "QSHPC_PRELOAD": "fixo_late_worker",
            "QSHPC_FORK_SERVER": "0",  # (a fork server would preload it before rank 0)
            "PYTHONPATH": f"{ROOT}{os.pathsep}{mods}",
        }
        out = run_cli("run", str(prog), "--workers", "2", env=env, timeout=180)
        assert out.returncode == 2, out.stderr
        assert "nothing had run, so the job's folder" in out.stderr, out.stderr
        no_internals(out.stderr)
        left = sorted(str(p.relative_to(home)) for p in (home / "jobs").rglob("*"))
        assert left == [], left


def test_a_log_never_makes_its_job_folder_again(tmp_path: Path) -> None:
    """review50 F4: a worker's log made the removed job folder (and ``logs/``) again."""
    from qshpc.errors import UserError
    from qshpc.runtime.logtee import LogTee

    job = tmp_path / "J"
    with pytest.raises(UserError, match=r"cannot write the job.s log .*/J/logs/rank-1\.out"):
        LogTee(job / "logs" / "rank-1.out", echo=False)
    assert not job.exists()


def test_a_huge_json_arguments_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """review50 F7: a 20 GB --arguments JSON was read whole (rank 0 OOM-killed; 3 GB: 6.3 GB
    resident, 11 s, then "not valid JSON"). Here 300 MiB of zeros (sparse: no disk used), so
    that the code before the fix reads it (and says "not valid JSON") rather than dies."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    zeros = tmp_path / "a.json"
    with open(zeros, "wb") as f:
        f.truncate(300 << 20)
    out = run_cli("run", str(prog), "--workers", "0", "-a", str(zeros))
    assert out.returncode == 2, out.stderr
    assert f"cannot load arguments from {zeros}: not valid JSON: byte 0 is a NUL byte" in (
        out.stderr
    )
    no_internals(out.stderr)
    big = tmp_path / "big.json"
    big.write_text('{"x": [' + "1, " * 400 + "1]}")
    env = {"QSHPC_ARGUMENTS_JSON_MAX": "1000"}
    out = run_cli("run", str(prog), "--workers", "0", "-a", str(big), env=env)
    assert out.returncode == 2, out.stderr
    size = big.stat().st_size
    assert (
        f"cannot load arguments from {big}: it is {size:,} bytes, over the 1,000 a JSON "
        "arguments file may hold" in out.stderr
    ), out.stderr
    assert "qshpc.save_arguments" in out.stderr and "QSHPC_ARGUMENTS_JSON_MAX=BYTES" in out.stderr
    no_internals(out.stderr)
    out = run_cli("run", str(prog), "--workers", "0", "-a", str(big))  # under the default
    assert out.returncode == 0, out.stderr


COUNTS = "from qshpc import save_result\nsave_result({'00': 3, '11': 5})\n"


def test_the_reports_default_file_is_never_a_fifo_or_a_link_written_through(
    tmp_path: Path,
) -> None:
    """review50 F8: a FIFO as JOB_DIR/report.html hung `qshpc report J` (a link there had its
    target overwritten); a named --out keeps its rules (a link is written where it points)."""
    prog = tmp_path / "counts.py"
    prog.write_text(COUNTS)
    job = tmp_path / "J"
    assert run_cli("run", str(prog), "--workers", "0", "--job-dir", str(job)).returncode == 0
    target = tmp_path / "target.txt"
    target.write_text("keep")
    for name, command in (("report.html", "report"), ("plot.png", "plot")):
        path = job / name
        os.mkfifo(path)
        out = run_cli(command, str(job), timeout=60)
        assert out.returncode == 2, out.stderr
        assert f"cannot write {path}: it is a FIFO, not a regular file, and is left as it is" in (
            out.stderr
        )
        assert f"remove it (rm {path}), or name the file to write with --out" in out.stderr
        no_internals(out.stderr)
        path.unlink()
        path.symlink_to(target)
        out = run_cli(command, str(job), timeout=60)
        assert out.returncode == 2, out.stderr
        assert f"it is a link (to {target}), not a regular file" in out.stderr, out.stderr
        assert target.read_text() == "keep" and path.is_symlink()
        path.unlink()
        assert run_cli(command, str(job), timeout=60).returncode == 0
        assert path.is_file() and not path.is_symlink()
    (job / "report.html").unlink()
    (job / "report.html").symlink_to(target)
    out = run_cli("report", str(job), "--out", str(job / "report.html"))  # named: as before
    assert out.returncode == 0, out.stderr
    assert target.read_text().startswith("<!DOCTYPE html>")


@root_only
def test_a_job_folder_through_another_users_link_in_tmp_is_refused(tmp_path: Path) -> None:
    """review50 F9: `--job-dir /tmp/x`, another user's link to a folder of the user's, made
    the job there (fs.protected_symlinks=0); re-pointed, `qshpc status /tmp/x` showed
    another of the user's jobs. A link of the user's own there is followed, as before."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    target = tmp_path / "mine" / "new"
    target.parent.mkdir()
    link = sticky / "x"
    link.symlink_to(target)
    os.lchown(link, THEIRS, -1)
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(link))
    assert out.returncode == 2, out.stderr
    assert (
        f"refusing --job-dir {link}: it goes through {link}, a link (to {target}) that uid "
        f"{THEIRS} owns in {sticky}, a folder every user can write" in out.stderr
    ), out.stderr
    assert f"give the folder by its own path ({target})" in out.stderr
    no_internals(out.stderr)
    assert not target.exists()
    assert run_cli("run", str(prog), "--workers", "0", "--job-dir", str(target)).returncode == 0
    mine = tmp_path / "mine" / "via"
    mine.symlink_to(link)  # (a link of the user's to that link: its way goes through it)
    for args in (("status", str(link)), ("result", str(mine)), ("run", "--resume", str(link))):
        out = run_cli(*args)
        assert out.returncode == 2, out.stderr
        assert f"refusing job folder {args[-1]}: it goes through {link}" in out.stderr
    os.lchown(link, os.geteuid(), -1)
    assert run_cli("status", str(link)).returncode == 0


@root_only
def test_the_steps_folder_is_held_to_the_stores_rule(qshpc_home: Path) -> None:
    """fixL left (review50 F0b's family): `$QSHPC_HOME/steps`, where the step folders of a
    multi-node distributed step go, was used whoever owned or could write it."""
    from qshpc.aer.distributed.launch import Mpiexec
    from qshpc.aer.distributed.run import _scratch
    from qshpc.store.perms import UnsafeStoreError

    qshpc_home.mkdir(mode=0o700)
    steps = qshpc_home / "steps"
    assert _scratch(Mpiexec(shared_folder=True)) == str(steps)
    assert steps.stat().st_mode & 0o777 == 0o700
    os.chown(steps, THEIRS, THEIRS)
    with pytest.raises(UnsafeStoreError, match=f"steps' folder {steps}: it is owned by uid"):
        _scratch(Mpiexec(shared_folder=True))
    steps.chmod(0o1777)  # (sticky, but its owner may still rename what is in it)
    with pytest.raises(UnsafeStoreError, match=f"steps' folder {steps}: it is owned by uid"):
        _scratch(Mpiexec(shared_folder=True))
    os.chown(steps, os.geteuid(), -1)
    steps.chmod(0o775)  # the user's own, made by an older qshpc under umask 002: tightened
    assert _scratch(Mpiexec(shared_folder=True)) == str(steps)
    assert steps.stat().st_mode & 0o7777 == 0o700
    assert _scratch(Mpiexec()) is None  # (one host: a private temporary folder)
