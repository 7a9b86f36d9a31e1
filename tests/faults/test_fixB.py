"""review39 F1, F3 (session 25, fixB): whose a group is, and which programs a resume runs.

F1: a group counted as the user's private one when its member list named nobody else, but
that list never names the users whose *primary* group it is: another user sharing the
primary group could rewrite a group-writable program that a resume then ran as the user.
The test makes two real accounts (``useradd``) sharing one primary group and runs qshpc as
one of them (``runuser``); they are removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAIL_AT_END, mpiexec
from tests.faults.test_fix35b import PROG as THEIR_PROG

REPO = Path(__file__).resolve().parents[2]
#: A Python the new accounts may run (the tests' own may lie under root's 0700 home):
#: qshpc.store.trust needs nothing outside the standard library.
PYTHON = "/usr/bin/python3"
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not Path(PYTHON).is_file(),
    reason="making accounts needs root, useradd and a system Python",
)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")


@pytest.fixture
def pair() -> Iterator[tuple[str, str, Path]]:
    """Two new users, the first one's own group (named after it) the second one's primary
    group too; and a scratch folder both can reach."""
    me, other = f"fxb{os.getpid()}a", f"fxb{os.getpid()}b"
    subprocess.run(["useradd", "-M", "-U", me], check=True)
    scratch = Path(tempfile.mkdtemp(prefix="fixB-"))
    try:
        os.chmod(scratch, 0o755)
        subprocess.run(["useradd", "-M", "-N", "-g", me, other], check=True)
        yield me, other, scratch
    finally:
        for user in (other, me):
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", me], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _as(user: str, scratch: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(scratch),
        "QSHPC_HOME": str(scratch / "home"), "PYTHONDONTWRITEBYTECODE": "1",
    }  # fmt: skip
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


@as_root
def test_a_primary_group_another_user_has_too_is_not_private(
    pair: tuple[str, str, Path],
) -> None:
    """The user's umask-002 folder and group-writable program, their group the other
    user's primary group: a new job there and the program's resume are refused, named."""
    me, other, scratch = pair
    runs = scratch / "runs"
    runs.mkdir()
    prog = runs / "p.py"
    prog.write_text("print('ran')\n")
    uid, gid = int(_as(me, scratch, "id", "-u").stdout), int(_as(me, scratch, "id", "-g").stdout)
    for path in (runs, prog):
        os.chown(path, uid, gid)
    os.chmod(runs, 0o775)
    os.chmod(prog, 0o664)
    check = (
        "import sys\nfrom pathlib import Path\nfrom qshpc.store.trust import check_program, "
        "folder_risk\nrisk = folder_risk(Path(sys.argv[1]) / 'jd', new=True)\n"
        "print(risk[0] if risk else 'alone')\ntry:\n    check_program(Path(sys.argv[2]), 'J')\n"
        "except Exception as exc:\n    print(exc)\nelse:\n    print('resumes')\n"
    )
    out = _as(me, scratch, PYTHON, "-c", check, str(runs), str(prog))
    assert out.returncode == 0, out.stderr
    risk, refusal = out.stdout.strip().splitlines()
    assert (
        risk == f"group {me} (gid {gid}) can write the folder holding it, {runs} (its mode is 0775)"
    )
    assert refusal.startswith(f"refusing to resume job J: it runs {prog}"), refusal
    assert f"group {me} (gid {gid}) can write it (its mode is 0664)" in refusal, refusal
    assert "to resume, if its group is your team's, set QSHPC_SHARE_GROUP=1" in refusal, refusal
    assert "or `chmod go-w` it and the folder holding it" in refusal, refusal
    # the other user gone, the group is the user's alone again
    subprocess.run(["userdel", other], check=True)
    out = _as(me, scratch, PYTHON, "-c", check, str(runs), str(prog))
    assert out.stdout.split() == ["alone", "resumes"], out.stdout + out.stderr


TEAM = 4242  # a teammate's uid and the team's gid (no account needed: ownership is checked)

PROG = THEIR_PROG + FAIL_AT_END  # writes its uid to argv[1]; FAILS with FAIL_AT_END


def _qshpc(
    *args: str, env: dict[str, str] | None = None, ranks: int = 0
) -> subprocess.CompletedProcess[str]:
    """``qshpc ARGS`` as root with the team's gid among its groups (as a member's login);
    under ``mpiexec -n RANKS`` when given (rank 0's own check, as under srun)."""
    launch = [mpiexec(), "-n", str(ranks)] if ranks else []
    return subprocess.run(
        [*launch, sys.executable, "-m", "qshpc", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, extra_groups=[TEAM],
    )  # fmt: skip


def _failed_job(prog: Path, ran: Path, home: Path) -> str:
    out = _qshpc("run", str(prog), str(ran), "--workers", "0", env={"FAIL_AT_END": "1"})
    assert out.returncode == 1, out.stderr
    ran.unlink()
    (job,) = (home / "jobs").iterdir()
    return job.name


@root_only
def test_resume_runs_another_users_program_unchanged_since_the_job(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """A site's program (another account's, 0644, in a folder of its own): the first run
    was never checked, so its resume runs it as long as it did not change; once it changed,
    the resume is refused, naming how to resume."""
    site = tmp_path / "site"
    site.mkdir()
    prog = site / "vqe.py"
    prog.write_text(PROG)
    os.chown(prog, TEAM + 1, TEAM + 1)
    os.chown(site, TEAM + 1, TEAM + 1)
    ran = tmp_path / "ran"
    job = _failed_job(prog, ran, qshpc_home)
    fail = {"FAIL_AT_END": "1"}  # (so that it can be resumed again below)
    out = _qshpc("run", str(prog), str(ran), "--resume", job, "--workers", "0", env=fail)
    assert out.returncode == 1 and ran.read_text() == "0", out.stderr  # it ran (and failed)
    ran.unlink()
    prog.write_text(PROG + "# changed by its owner\n")
    out = _qshpc("run", str(prog), str(ran), "--resume", job, "--workers", "0")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"refusing to resume job {job}: it runs {prog}" in line, line
    assert f"it belongs to uid {TEAM + 1}" in line and "changed after the job was made" in line
    assert (
        f"it cannot be resumed so; start a new job with a copy of your own (this job's results stay readable: `qshpc result {job}`)"
        in line
    ), line
    assert "QSHPC_SHARE_GROUP" not in line and not ran.exists()


@root_only
def test_resume_runs_a_teams_program_with_share_group(tmp_path: Path, qshpc_home: Path) -> None:
    """A teammate's program in the team's 2775 folder, edited by them after the job
    started: refused alone (the line names QSHPC_SHARE_GROUP=1), run with it, as the
    store trusts the team; also through rank 0's own check (mpiexec)."""
    team = tmp_path / "team"
    team.mkdir()
    prog = team / "vqe.py"
    prog.write_text(PROG)
    ran = tmp_path / "ran"
    job = _failed_job(prog, ran, qshpc_home)
    for path, mode in ((team, 0o2775), (prog, 0o664)):
        os.chown(path, TEAM, TEAM)
        os.chmod(path, mode)
    out = _qshpc("run", str(prog), str(ran), "--resume", job, "--workers", "0")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"it belongs to uid {TEAM}" in line, line
    assert "if its group is your team's, set QSHPC_SHARE_GROUP=1" in line, line
    out = _qshpc("run", str(prog), str(ran), "--resume", job, ranks=1)
    assert out.returncode == 2 and f"refusing to resume job {job}" in out.stderr, out.stderr
    assert not ran.exists()
    share = {"QSHPC_SHARE_GROUP": "1"}
    out = _qshpc("run", str(prog), str(ran), "--resume", job, ranks=1, env=share)
    assert out.returncode == 0, out.stderr
    assert ran.read_text() == "0"
