"""Writing a report into a shared folder never follows what a neighbour planted there.

Found by review (issue 16): the report and the timeline were written to a
fixed temporary name (``.report.html.tmp`` beside ``--out``) and renamed; in
a shared folder such as /tmp, a link planted under that name made qshpc
overwrite the file it pointed to (where the kernel's protected_symlinks is
off, as in many containers).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.timeout(300)

PROGRAM = """\
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return i

save_result(get([f(i) for i in range(3)]))
"""


def test_a_planted_link_at_the_temporary_name_is_not_followed(
    qshpc_home: Path, tmp_path: Path
) -> None:
    prog = tmp_path / "p.py"
    prog.write_text(PROGRAM)
    run = run_cli("run", str(prog), "--workers", "0")
    assert run.returncode == 0, run.stderr
    job = next(ln.split()[2] for ln in run.stdout.splitlines() if ln.startswith("qshpc: job "))
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for out in ("report.html", "timeline.svg", "timeline.png"):  # one job, every writer
        (shared / f".{out}.tmp").symlink_to(victim)
        args = ["report", job] if out.endswith(".html") else ["plot", job, "--timeline"]
        res = run_cli(*args, "--out", str(shared / out))
        assert res.returncode == 0, res.stderr
        assert victim.read_text() == "precious\n", out
        written = shared / out
        assert written.is_file() and not written.is_symlink()
        assert oct(written.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    left = [p.name for p in shared.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]
    assert left == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
