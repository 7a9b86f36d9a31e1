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
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: A Python the new accounts may run (the tests' own may lie under root's 0700 home):
#: qshpc.store.trust needs nothing outside the standard library.
PYTHON = "/usr/bin/python3"
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not Path(PYTHON).is_file(),
    reason="making accounts needs root, useradd and a system Python",
)


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
    # the other user gone, the group is the user's alone again
    subprocess.run(["userdel", other], check=True)
    out = _as(me, scratch, PYTHON, "-c", check, str(runs), str(prog))
    assert out.stdout.split() == ["alone", "resumes"], out.stdout + out.stderr
