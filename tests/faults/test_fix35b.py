"""review35 F3, F6, F7: a job folder given by its path is held to the store's rules; a copy of
a running job's folder is not the job; a stopped rank 0 is named so.

Root plays the neighbour, as in test_hostile.py: it gives a folder or a file to another
uid with os.chown (the neighbour needs no account: ownership is what is checked).
On 327c4ed (review35 F3) a job folder swapped in by another user was read as the
user's (``qshpc result`` printed their values) and ``--resume`` ran their program
as the user.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.faults.test_bad_input import finished_job, no_internals

NEIGHBOUR = 4242  # a uid (and gid) that is not ours
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")

PROG = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "from qshpc import save_result\n"
    "Path(sys.argv[1]).write_text(str(os.getuid()))\n"
    "save_result([1, 2])\n"
)


def _lines(text: str) -> list[str]:
    no_internals(text)
    return text.strip().splitlines()


def _chown_all(root: Path, uid: int, gid: int) -> None:
    for p in (root, *root.rglob("*")):
        os.chown(p, uid, gid)


def _moved_job(tmp_path: Path, home: Path, folder: Path) -> Path:
    """A finished job of ours, moved to ``folder/jd`` (given by path from now on)."""
    job = finished_job(tmp_path, home)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    return Path(shutil.move(str(job), folder / "jd"))


@as_root
@pytest.mark.parametrize(("perm", "gid"), [(0o777, 0), (0o770, NEIGHBOUR), (0o2770, NEIGHBOUR)])
def test_a_new_job_dir_in_a_folder_others_can_write_is_refused(
    tmp_path: Path, qshpc_home: Path, perm: int, gid: int
) -> None:
    prog = tmp_path / "p.py"
    prog.write_text(PROG)
    for open_ in (tmp_path / "open", tmp_path / "open2"):
        open_.mkdir()
        os.chown(open_, 0, gid)
        os.chmod(open_, perm)
    for job_dir, holder in (
        (tmp_path / "open" / "jd", tmp_path / "open"),
        (tmp_path / "open2" / "a" / "b" / "jd", tmp_path / "open2"),  # made by qshpc below
    ):
        out = run_cli("run", str(prog), str(tmp_path / "ran"), "--workers", "0", "--job-dir",
                      str(job_dir))  # fmt: skip
        assert out.returncode == 2, out.stderr
        (line,) = _lines(out.stderr)
        assert f"refusing to make job folder {job_dir}" in line, line
        assert f"the folder holding it, {holder} (its mode" in line, line
        assert f"(its mode is {perm:04o})" in line and "folder only you can write" in line, line
        assert not (holder / job_dir.relative_to(holder).parts[0]).exists()
        assert not (tmp_path / "ran").exists()


@as_root
def test_a_new_job_dir_under_a_sticky_or_private_group_folder_runs(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``/tmp``'s 1777 keeps others from renaming what is not theirs; a folder of the
    user's own private group (umask 002) is theirs alone: both are used, no word said."""
    from qshpc.store.trust import folder_risk

    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    private = tmp_path / "private"  # root's primary group (gid 0) has no other member here
    private.mkdir()
    os.chmod(private, 0o775)
    assert folder_risk(private / "jd", new=True) is None
    prog = tmp_path / "p.py"
    prog.write_text(PROG)
    out = run_cli("run", str(prog), str(tmp_path / "ran"), "--workers", "0", "--job-dir",
                  str(sticky / "jd"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr and (tmp_path / "ran").read_text() == "0"


@as_root
@pytest.mark.parametrize("how", ["swapped", "open-folder"])
def test_a_job_folder_others_could_replace_is_refused_to_run_and_warned_to_read(
    tmp_path: Path, qshpc_home: Path, how: str
) -> None:
    """``swapped``: the job folder is another user's (put in place of ours); ``open-folder``:
    ours, in a folder every user can write (chmod 777 after it was made)."""
    jd = _moved_job(tmp_path, qshpc_home, tmp_path / "shared")
    if how == "swapped":
        _chown_all(jd, NEIGHBOUR, NEIGHBOUR)
        why = f"it belongs to uid {NEIGHBOUR}"
    else:
        os.chmod(jd.parent, 0o777)
        why = f"every user can write the folder holding it, {jd.parent} (its mode is 0777)"
    for cmd in (["result"], ["status"], ["logs"]):
        out = run_cli(*cmd, str(jd))
        assert out.returncode == 0, (cmd, out.stderr)
        (line,) = _lines(out.stderr)
        assert line.startswith(f"qshpc: warning: job folder {jd}: {why}"), line
    assert '"v": [0, 2, 4, 6]' in run_cli("result", str(jd), "--json").stdout.replace("\n", "")
    prog = tmp_path / "p.py"
    prog.write_text(PROG)
    for cmd in (["cancel", str(jd)], ["run", str(prog), "--resume", str(jd), "--workers", "0"]):
        out = run_cli(*cmd)
        assert out.returncode == 2, (cmd, out.stderr)
        (line,) = _lines(out.stderr)
        assert f"refusing to use job folder {jd}: {why}" in line, line
        assert "their program run as you on --resume" in line, line
    # the fix the line names makes it the user's again
    if how == "open-folder":
        os.chmod(jd.parent, 0o755)
        out = run_cli("status", str(jd))
        assert out.returncode == 0 and not out.stderr, out.stderr


@as_root
def test_a_teams_job_by_path_is_read_without_a_word(tmp_path: Path, qshpc_home: Path) -> None:
    """docs/store.md, 'Sharing a store': a member's job in a team's 3770 ``jobs/``, read by
    path by another member with QSHPC_SHARE_GROUP=1, is neither refused nor warned."""
    team = tmp_path / "team"
    jd = _moved_job(tmp_path, qshpc_home, team / "jobs")
    _chown_all(team, NEIGHBOUR, os.getegid())
    for d in (team, team / "jobs"):
        os.chmod(d, 0o3770)
    os.chmod(jd, 0o2750)
    env = {"QSHPC_SHARE_GROUP": "1", "QSHPC_HOME": str(team)}
    out = run_cli("status", str(jd), env=env)
    assert out.returncode == 0 and not out.stderr, out.stderr
    alone = run_cli("status", str(jd))  # without the setting: a warning naming it
    (line,) = _lines(alone.stderr)
    assert f"belongs to uid {NEIGHBOUR}" in line and "QSHPC_SHARE_GROUP=1" in line, line


@as_root
@pytest.mark.parametrize("how", ["theirs", "writable", "open-folder"])
def test_resume_refuses_a_program_another_user_could_have_written(
    tmp_path: Path, qshpc_home: Path, how: str
) -> None:
    """The job folder is ours; the program it records (what a resume runs) is not ours alone."""
    src = tmp_path / "src"
    src.mkdir()
    prog = src / "p.py"
    prog.write_text(PROG + "raise SystemExit('fail once')\n")
    ran = tmp_path / "ran"
    out = run_cli("run", str(prog), str(ran), "--workers", "0")
    assert out.returncode == 1, out.stderr
    ran.unlink()
    prog.write_text(PROG)
    if how == "theirs":
        os.chown(prog, NEIGHBOUR, NEIGHBOUR)
        why = f"it belongs to uid {NEIGHBOUR}"
    elif how == "writable":
        os.chmod(prog, 0o666)
        why = "every user can write it (its mode is 0666)"
    else:
        os.chmod(src, 0o777)
        why = f"every user can write the folder holding it, {src} (its mode is 0777)"
    job = next((qshpc_home / "jobs").iterdir()).name
    out = run_cli("run", str(prog), str(ran), "--resume", job, "--workers", "0")
    assert out.returncode == 2, out.stderr
    (line,) = _lines(out.stderr)
    assert f"refusing to resume job {job}: it runs {prog}" in line and why in line, line
    assert not ran.exists()
    # rank 0 checks it too (mpiexec with no launcher of qshpc's before it, as srun)
    out = run_cli("run", str(prog), str(ran), "--resume", job, ranks=1)
    assert out.returncode == 2 and f"refusing to resume job {job}" in out.stderr, out.stderr
    assert not ran.exists()
    os.chown(prog, 0, 0)
    os.chmod(prog, 0o644)
    os.chmod(src, 0o755)
    out = run_cli("run", str(prog), str(ran), "--resume", job, "--workers", "0")
    assert out.returncode == 0, out.stderr
    assert ran.read_text() == "0"


SLOW = """\
import time
from pathlib import Path
(Path(__file__).parent / "started").touch()
time.sleep(120)
"""


def _running(tmp_path: Path, home: Path) -> tuple[subprocess.Popen[str], Path]:
    """A slow job of ours running (``qshpc run --workers 0``), and its folder."""
    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    (job,) = (home / "jobs").iterdir()
    return proc, job


def test_cancel_of_a_stopped_rank_0_names_the_stop(tmp_path: Path, qshpc_home: Path) -> None:
    """review35 F7: it said "its program went on 10 s after SIGTERM (it handles SIGTERM
    itself)" of a rank 0 stopped with SIGSTOP, which handled nothing."""
    proc, job = _running(tmp_path, qshpc_home)
    try:
        meta = json.loads(run_cli("status", job.name, "--json").stdout)
        pid = int(meta["ranks"][0]["pid"])
        os.kill(pid, signal.SIGSTOP)
        out = run_cli("cancel", job.name, "--grace", "1", timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"rank 0 (pid {pid}) was stopped (SIGSTOP, Ctrl-Z" in out.stdout, out.stdout
        assert "handles SIGTERM itself" not in out.stdout
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    status = run_cli("status", job.name)
    assert status.stdout.startswith("CANCELED") and "was stopped (SIGSTOP" in status.stdout


def test_a_copy_of_a_running_jobs_folder_is_not_the_job(tmp_path: Path, qshpc_home: Path) -> None:
    """review35 F6: ``qshpc cancel COPY`` of a folder copied (``cp -a``) while the job ran
    cancelled the live job, and ``qshpc status COPY`` said RUNNING."""
    proc, job = _running(tmp_path, qshpc_home)
    try:
        backup = tmp_path / "backup"
        backup.mkdir()
        copy = backup / job.name
        subprocess.run(["cp", "-a", str(job), str(copy)], check=True)
        out = run_cli("cancel", str(copy))
        assert out.returncode == 2, out.stdout + out.stderr
        (line,) = _lines(out.stderr)
        assert f"{copy} is a copy of the job's folder {job}" in line, line
        assert f"qshpc cancel {job}" in line, line
        status = run_cli("status", str(copy))
        assert status.stdout.startswith("FAILED"), status.stdout
        assert "this folder is a copy of the job's folder" in status.stdout, status.stdout
        # without the copied lock (broken by a read, gone): rank 0's record tells it too
        bare = backup / "bare"
        subprocess.run(["cp", "-a", str(job), str(bare)], check=True)
        for lock in bare.glob("job.lock*"):
            lock.unlink()
        out = run_cli("cancel", str(bare))
        assert out.returncode == 2 and f"{bare} is a copy of the job's folder {job}" in out.stderr
        # a copy under another name in the store: `qshpc rm` removes it, and only it
        inside = qshpc_home / "jobs" / f"{job.name}.bak"
        subprocess.run(["cp", "-a", str(job), str(inside)], check=True)
        out = run_cli("rm", inside.name)
        assert out.returncode == 0, out.stdout + out.stderr
        assert not inside.exists()
        assert run_cli("status", job.name).stdout.startswith("RUNNING")  # the job ran on
        assert proc.poll() is None
        out = run_cli("cancel", job.name)
        assert out.returncode == 0 and "cancel requested" in out.stdout, out.stderr
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert run_cli("status", job.name).stdout.startswith("CANCELED")
