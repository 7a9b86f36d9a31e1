"""review54 (session 28, lead): ``--cache-dir`` and ``$QSHPC_HOME`` through another
user's link in a sticky folder every user can write (``/tmp``) were followed, where
``--job-dir`` is refused (fixO, review50 F9): the other user could re-point them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.faults.test_bad_input import no_internals

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a link of another uid needs root")
THEIRS = 4242
PROG = "from qshpc import distribute_task, get, save_result\n" + (
    "@distribute_task(cache=True)\ndef f(x):\n    return x + 1\nsave_result(get(f(1)))\n"
)


def _planted(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    sticky = tmp_path / "tmp"
    sticky.mkdir(exist_ok=True)
    sticky.chmod(0o1777)
    target = tmp_path / "mine" / name
    target.mkdir(parents=True, mode=0o700)
    link = sticky / name
    link.symlink_to(target)
    os.lchown(link, THEIRS, -1)
    return sticky, target, link


@root_only
def test_a_cache_dir_through_another_users_link_in_tmp_is_refused(
    tmp_path: Path, qshpc_home: Path
) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    sticky, target, link = _planted(tmp_path, "cache")
    out = run_cli("run", str(prog), "--workers", "0", "--cache", "--cache-dir", str(link))
    assert out.returncode == 2, out.stderr
    assert f"refusing the cache folder {link}: it goes through {link}" in out.stderr
    assert f"uid {THEIRS} owns in {sticky}" in out.stderr
    no_internals(out.stderr)
    assert not any(target.iterdir())
    os.lchown(link, os.geteuid(), -1)  # a link of the user's own: followed, as before
    out = run_cli("run", str(prog), "--workers", "0", "--cache", "--cache-dir", str(link))
    assert out.returncode == 0, out.stderr


@root_only
def test_a_qshpc_home_through_another_users_link_in_tmp_is_refused(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    _, target, link = _planted(tmp_path, "home")
    env = {**os.environ, "QSHPC_HOME": str(link)}
    for args in (("run", str(prog), "--workers", "0"), ("list",)):
        out = run_cli(*args, env=env)
        assert out.returncode == 2, out.stderr
        assert f"refusing $QSHPC_HOME {link}: it goes through {link}" in out.stderr
        no_internals(out.stderr)
    assert not any(target.iterdir())
