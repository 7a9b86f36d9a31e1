"""hunt22a: a team's store and its ``arrays/`` folder (review23 F3).

Members are simulated as hunt21b's tests do: ``setpriv`` to another uid in the
team's group, allowed to read any file (the interpreter's are root's alone) but
writing as that uid. Each test fails on e5f893c (session 21's main).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid)")

TEAM_GID = 4500
FIRST, SECOND = 4343, 4242

MAP = """\
from qshpc import LocalClient, Program
from qshpc.errors import UserError
client = LocalClient(workers=0)
program = Program(title="sw", entrypoint="p.py", working_dir={work!r})
try:
    jobs = client.map(program, [{{"x": 1}}, {{"x": 2}}])
except UserError as exc:
    print("UserError:", exc)
else:
    print("results:", [j.result() for j in jobs])
"""


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Path]:
    """A team's store as docs/store.md sets it up (home and jobs/ 3770, the team's
    group, owned by the first member), in a folder the members can reach."""
    base = Path(tempfile.mkdtemp(prefix="qshpc-hunt22a-"))
    os.chmod(base, 0o755)
    (base / "p.py").write_text(
        "from qshpc import get_arguments, save_result\nsave_result(get_arguments()['x'])\n"
    )
    home = base / "team"
    (home / "jobs").mkdir(parents=True)
    for d in (home, home / "jobs"):
        os.chown(d, FIRST, TEAM_GID)
        os.chmod(d, 0o3770)
    try:
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _map_as(uid: int, home: Path) -> str:
    """A local array (two elements) mapped by member ``uid``; its output."""
    member = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={TEAM_GID}"]
    member += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home)}
    env["QSHPC_SHARE_GROUP"] = "1"
    code = MAP.format(work=str(home.parent))
    out = subprocess.run(
        [*member, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=home.parent,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def _owners(folder: Path) -> list[int]:
    return sorted(p.stat().st_uid for p in folder.iterdir())


@needs_root
def test_two_members_map_local_arrays_in_a_teams_store(team: Path) -> None:
    # On e5f893c the first member's map made arrays/ 2750 (their own) and the second
    # member's map raised PermissionError (make_dir chmodded the folder it did not own),
    # leaving its two element folders QUEUED in jobs/ with no driver.
    assert _map_as(FIRST, team) == "results: [1, 2]"
    assert _map_as(SECOND, team) == "results: [1, 2]"
    arrays = (team / "arrays").stat()
    assert stat.S_IMODE(arrays.st_mode) == 0o3770 and arrays.st_gid == TEAM_GID
    assert _map_as(FIRST, team) == "results: [1, 2]"  # (left 3770: not chmodded back)
    assert stat.S_IMODE((team / "arrays").stat().st_mode) == 0o3770
    assert _owners(team / "jobs") == [SECOND] * 2 + [FIRST] * 4


@needs_root
def test_an_arrays_folder_a_member_cannot_write_is_one_user_error(team: Path) -> None:
    # arrays/ as e5f893c's first map left it (2750, the first member's): the second
    # member's map now says which folder and what its owner should run, and leaves
    # no job folder behind.
    arrays = team / "arrays"
    arrays.mkdir()
    os.chown(arrays, FIRST, TEAM_GID)
    os.chmod(arrays, 0o2750)
    out = _map_as(SECOND, team)
    assert out == (
        f"UserError: cannot make the array's folders: Permission denied ({arrays}/"
        + out.split(f"({arrays}/", 1)[1].split(")", 1)[0]
        + f"); {arrays} belongs to uid {FIRST}: in a team's store every member writes it, "
        f"so its owner should run `chmod 3770 {arrays}` (docs/store.md, 'Sharing a store'); "
        "else point QSHPC_HOME at a folder of your own"
    ), out
    assert list((team / "jobs").iterdir()) == [] and list(arrays.iterdir()) == []
    assert stat.S_IMODE(arrays.stat().st_mode) == 0o2750  # not the member's to chmod


@needs_root
def test_an_arrays_folder_the_team_writes_without_the_sticky_bit_is_refused(
    team: Path,
) -> None:
    # arrays/ holds a Slurm array's pickled calls: a member who can rename another's
    # array folder can have theirs loaded. On e5f893c it was never checked (a 2770
    # arrays/ failed with PermissionError from its chmod, or was used).
    arrays = team / "arrays"
    arrays.mkdir()
    os.chown(arrays, FIRST, TEAM_GID)
    os.chmod(arrays, 0o2770)
    out = _map_as(SECOND, team)
    assert out.startswith(f"UserError: refusing to use the arrays folder {arrays}: "), out
    assert "chmod +t" in out
    assert list((team / "jobs").iterdir()) == [] and list(arrays.iterdir()) == []


@needs_root
def test_a_teams_home_without_jobs_or_arrays_gets_them_made_for_the_team(team: Path) -> None:
    # On e5f893c the first member made jobs/ 2750 (their own): every other member's
    # jobs failed ("Permission denied").
    (team / "jobs").rmdir()
    assert _map_as(FIRST, team) == "results: [1, 2]"
    assert _map_as(SECOND, team) == "results: [1, 2]"
    for d in (team / "jobs", team / "arrays"):
        st = d.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o3770, FIRST, TEAM_GID)


def test_a_team_store_without_the_sticky_bit_is_read_with_a_warning(tmp_path: Path) -> None:
    # review23 F4: on e5f893c a team's store set up 2770 (docs/store.md's setup before
    # session 21) refused every command, list/status/result/logs/wait too (exit 2), until
    # its owner ran chmod +t. Reads now go on with one warning per folder; run, rm, gc,
    # cancel and `result --allow-pickle` are still refused.
    from tests.conftest import run_cli

    home = tmp_path / "team"
    (home / "jobs").mkdir(parents=True)
    for d in (home, home / "jobs"):
        os.chmod(d, 0o3770)
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(7)\n")
    env = {"QSHPC_HOME": str(home), "QSHPC_SHARE_GROUP": "1", "PYTHONPATH": str(ROOT)}
    assert run_cli("run", str(prog), "--workers", "0", env=env).returncode == 0
    (job,) = (home / "jobs").iterdir()
    for d in (home, home / "jobs"):
        os.chmod(d, 0o2770)  # (chmod -t)
    for args in (["list"], ["status", job.name], ["result", job.name], ["logs", job.name],
                 ["wait", job.name, "-q"]):  # fmt: skip
        out = run_cli(*args, env=env)
        assert out.returncode == 0, (args, out.stderr)
        warned = [ln for ln in out.stderr.splitlines() if ln.startswith("qshpc: warning: ")]
        assert len(warned) == 2 and all("chmod +t" in w for w in warned), (args, out.stderr)
        assert "read anyway, but run, submit, rm, gc and cancel refuse it" in warned[0]
    assert run_cli("result", job.name, env=env).stdout.strip() == "7"
    for args in (["run", str(prog), "--workers", "0"], ["rm", job.name],
                 ["gc", "--older-than", "0d"], ["cancel", job.name],
                 ["result", job.name, "--allow-pickle"]):  # fmt: skip
        out = run_cli(*args, env=env)
        assert out.returncode == 2 and "refusing to use" in out.stderr, (args, out.stderr)
    assert job.is_dir() and len(list((home / "jobs").iterdir())) == 1


def test_a_read_command_run_in_process_leaves_the_refusal_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read-only allowance lasts as long as its command: typer's app run in-process
    # (a user's script, CliRunner) and then the store used for a write refuses again.
    from typer.testing import CliRunner

    from qshpc.cli import app as cli
    from qshpc.store import perms

    if not cli.app.registered_commands:
        cli._register()
    home = tmp_path / "team"
    (home / "jobs").mkdir(parents=True)
    for d in (home, home / "jobs"):
        os.chmod(d, 0o2770)
    monkeypatch.setenv("QSHPC_HOME", str(home))
    monkeypatch.setenv("QSHPC_SHARE_GROUP", "1")
    out = CliRunner().invoke(cli.app, ["list"])
    assert out.exit_code == 0, out.output
    with pytest.raises(perms.UnsafeStoreError, match="without the sticky bit"):
        perms.check_private_dir(home / "jobs", "the jobs folder")
