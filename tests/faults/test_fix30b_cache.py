"""review30 F7: in a shared cache, a member's folder (or link) under another user's uid.

On b6f478f it refused that user's every ``qshpc run --cache`` (exit 2), though a cache
problem never fails a job, and ``qshpc cache ls``/``gc`` told the owner of the cache
folder to ask the squatter to remove it. Now the job runs without the cache, with one
warning (from rank 0, not one a rank); ``cache`` commands still refuse, saying what the
user can do: the owner of the cache folder may move the folder aside (the sticky bit
lets a folder's owner rename what others made in it), which these tests do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv, chown)")

ME, SQUATTER, TEAM = 65534, 65533, 4242
#: The cache's user (nobody), in the team's group; reads what root's interpreter holds.
AS_ME = [
    "setpriv",
    f"--reuid={ME}",
    f"--regid={TEAM}",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]
PROGRAM = (
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef f(x):\n    return 2 * x\n"
    "save_result(sum(get([f(i) for i in range(6)])))\n"
)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [*AS_ME, sys.executable, "-m", "qshpc", *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _setup(base: Path, cache_owner: int) -> tuple[Path, Path, dict[str, str]]:
    """A 3770 team cache owned by ``cache_owner``, this user's home, and the program."""
    cache, home = base / "cache", base / "home"
    cache.mkdir()
    os.chown(cache, cache_owner, TEAM)
    os.chmod(cache, 0o3770)
    home.mkdir()
    os.chown(home, ME, TEAM)
    prog = base / "p.py"
    prog.write_text(PROGRAM)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QSHPC_HOME": str(home),
        "QSHPC_SHARE_GROUP": "1",
        "QSHPC_CACHE_DIR": str(cache),
    }
    return cache, prog, env


def _squat(cache: Path, link: bool) -> Path:
    """What the squatter leaves under this user's uid: a folder, or a link to nowhere."""
    squat = cache / str(ME)
    if link:
        squat.symlink_to(cache / "nowhere")
        os.lchown(squat, SQUATTER, TEAM)
    else:
        squat.mkdir()
        os.chown(squat, SQUATTER, TEAM)
        os.chmod(squat, 0o2750)  # the owner of the cache cannot empty it: rm -r fails
    return squat


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("qshpc: cache:")]


@needs_root
@pytest.mark.parametrize("link", [False, True], ids=["folder", "link"])
def test_a_job_runs_without_the_cache_and_the_owner_is_told_to_move_it_aside(
    open_dir: Path, link: bool
) -> None:
    cache, prog, env = _setup(open_dir, cache_owner=ME)
    squat = _squat(cache, link)
    run = _cli("run", str(prog), "--cache", "--workers", "2", env=env)
    assert run.returncode == 0, run.stderr
    assert "SUCCEEDED (6 tasks run)" in run.stdout
    (warning,) = _warnings(run.stderr)  # one for the job, not one a rank
    aside = cache / f"{ME}.uid-{SQUATTER}"
    assert f"{squat}{' (a link)' if link else ''} belongs to uid {SQUATTER}" in warning
    assert f"you own the cache folder {cache}, so you can move it aside (mv {squat} {aside};" in (
        warning
    )
    assert warning.endswith("tasks run without the cache") and "ask them" not in warning
    for args in (["cache", "ls"], ["cache", "gc"]):
        res = _cli(*args, env=env)
        assert res.returncode == 2, res.stderr
        assert f"mv {squat} {aside}" in res.stderr and "ask them" not in res.stderr
        assert "Traceback" not in res.stderr
    moved = subprocess.run([*AS_ME, "mv", str(squat), str(aside)], capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr  # what the message says works, as that user
    first = _cli("run", str(prog), "--cache", "--workers", "2", env=env)
    again = _cli("run", str(prog), "--cache", "--workers", "2", env=env)
    assert _warnings(first.stderr) == _warnings(again.stderr) == [], again.stderr
    assert "6 from the cache" in again.stdout, again.stdout


@needs_root
def test_a_member_not_owning_the_cache_is_told_whom_to_ask(open_dir: Path) -> None:
    cache, prog, env = _setup(open_dir, cache_owner=0)
    squat = _squat(cache, link=False)
    env_team = {**env}
    as_member = [a if a != "--clear-groups" else f"--groups={TEAM}" for a in AS_ME]
    run = subprocess.run(
        [*as_member, sys.executable, "-m", "qshpc", "run", str(prog), "--cache", "--workers", "0"],
        capture_output=True,
        text=True,
        env=env_team,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    (warning,) = _warnings(run.stderr)
    assert f"{squat} belongs to uid {SQUATTER}" in warning
    assert f"only uid {SQUATTER} (or the owner of {cache}) can remove it: ask them to" in warning
