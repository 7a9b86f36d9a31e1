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


def test_a_home_under_a_folder_others_can_write_is_checked_at_each_call(tmp_path: Path) -> None:
    """review56 H2: `qshpc_home`'s memo took a home under a folder every user could write
    (no sticky bit) as settled: another user renamed its part and put a link of theirs in
    its place, and the next call of the same process went through it."""
    from qshpc.store.trust import check_links

    shared = tmp_path / "shared"
    home = shared / "me" / "home"
    home.mkdir(parents=True)
    shared.chmod(0o777)
    assert check_links(home, "$QSHPC_HOME") is False  # no memo: looked at each call
    shared.chmod(0o775)
    assert check_links(home, "$QSHPC_HOME") is False  # (its group can write it too)
    shared.chmod(0o755)
    assert check_links(home, "$QSHPC_HOME") is True
