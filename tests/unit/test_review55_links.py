"""review55 S1 (session 29, lead): ``..`` after another user's link in a sticky folder
every user can write (``/tmp``) skipped the link check: the path was normalised first
(``os.path.abspath`` drops ``link/..``), while the kernel follows the link, then ``..``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

THEIRS = 4242
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (lchown)")


@root_only
def test_dot_dot_after_another_users_link_is_refused(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("print('ran')\n")
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    target = tmp_path / "mine" / "sub" / "deep"
    target.mkdir(parents=True)
    link = sticky / "x"
    link.symlink_to(target)
    os.lchown(link, THEIRS, -1)
    env = {"QSHPC_HOME": str(tmp_path / "home")}
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", f"{link}/../jdx", env=env)
    assert out.returncode == 2, out.stderr
    assert f"it goes through {link}, a link (to {target}) that uid {THEIRS}" in out.stderr
    assert not (target.parent / "jdx").exists()
    out = run_cli("list", env={"QSHPC_HOME": f"{link}/.."})
    assert out.returncode == 2 and f"refusing $QSHPC_HOME {link}/..: it goes through" in out.stderr
    # a `..` that comes back out of a folder of the user's is fine
    mine = tmp_path / "mine" / "sub" / ".." / "jd"
    assert (
        run_cli("run", str(prog), "--workers", "0", "--job-dir", str(mine), env=env).returncode == 0
    )
