"""review53 (session 28, fixS): a config file is read through the descriptor that was
checked, a link on its way that another user owns is refused, and a check that fails
midway is a refusal (L1); a file the team's group can write is not trusted (L2).

A race is made certain by doing the swap inside the check (the only stand-in: the
check itself runs as it is). Another user's file is a real file given to another uid
(4242: the owner is what is checked), so most tests need root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qshpc.errors import ResourceError
from qshpc.store import codetrust
from qshpc.submit.config import resolve_resources

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
THEIRS = 4242
MINE = '[slurm]\nsetup = ["echo MINE"]\n'
EVIL = '[slurm]\nsetup = ["touch /tmp/pwned"]\n'


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(mode=0o700)
    work.mkdir(mode=0o700)
    monkeypatch.setenv("QSHPC_HOME", str(home))
    monkeypatch.chdir(work)
    return home


_CODE_RISK = codetrust.code_risk


def _during_check(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None],
                  after: Callable[[], None] = lambda: None) -> None:  # fmt: skip
    """Run ``before`` as the config file's check starts and ``after`` once it ends: another
    user's swap, made to land in the window every time."""

    def racing(path: Path, *args: object, **kwargs: object) -> tuple[str, str] | None:
        before()
        try:
            return _CODE_RISK(path, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            after()

    monkeypatch.setattr(codetrust, "code_risk", racing)


def _theirs(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chown(path, THEIRS, THEIRS)
    return path


@root_only
def test_a_config_file_swapped_after_it_is_opened_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On main aefb223 the file was checked, then opened again by its path: another
    user's file put in its place between the two was read (its setup lines went into the
    batch script; review53 saw 1-2 of 3000 with a flipping link)."""
    home = _home(tmp_path, monkeypatch)
    cfg = home / "config.toml"
    cfg.write_text(MINE)
    evil = _theirs(tmp_path / "evil.toml", EVIL)
    # The check runs on the user's file; theirs lands at the path when it ends.
    _during_check(monkeypatch, lambda: None, lambda: os.replace(evil, cfg))
    assert resolve_resources({}, environ={}).setup == ["echo MINE"]  # read what was checked
    cfg.unlink()
    cfg.write_text(MINE)
    # Theirs lands at the path after the open, before the check.
    _during_check(monkeypatch, lambda: os.replace(_theirs(tmp_path / "e3", EVIL), cfg))
    with pytest.raises(ResourceError) as err:
        resolve_resources({}, environ={})
    text = str(err.value)
    assert text.startswith(f"refusing to read {cfg}: another file was put in its place while "
                           "it was checked, so another user could put shell lines"), text  # fmt: skip
    assert "try again" in text


@root_only
def test_a_config_file_that_vanishes_during_its_check_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On main aefb223 an OSError in the middle of the check (a swap under way) counted as
    trusted, and the file then read by its path was whatever stood there."""
    home = _home(tmp_path, monkeypatch)
    cfg = home / "config.toml"
    cfg.write_text(MINE)
    _during_check(monkeypatch, cfg.unlink, lambda: _theirs(cfg, EVIL) and None)
    with pytest.raises(ResourceError, match=rf"refusing to read {cfg}: it could not be checked "
                       r"\(No such file or directory: .*changed\).*try again"):  # fmt: skip
        resolve_resources({}, environ={})


@root_only
def test_a_link_another_user_owns_on_the_way_to_a_config_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review53 L1: QSHPC_HOME named through another user's link in /tmp (they can point
    it at their folder at any moment): on main aefb223 it was trusted whenever it pointed
    at the user's own folder; root's link is fine."""
    home = _home(tmp_path, monkeypatch)
    (home / "config.toml").write_text(MINE)
    link = tmp_path / "link"
    link.symlink_to(home)
    os.lchown(link, THEIRS, THEIRS)
    monkeypatch.setenv("QSHPC_HOME", str(link))
    with pytest.raises(ResourceError) as err:
        resolve_resources({}, environ={})
    text = str(err.value)
    assert text.startswith(f"refusing to read {link}/config.toml: {link}, a link on its way, "
                           f"belongs to uid {THEIRS}, so another user"), text  # fmt: skip
    assert f"use a path that does not go through {link}, or point QSHPC_HOME" in text
    # A link of the user's that names another user's link, further on: found too.
    mine = tmp_path / "mine"
    mine.symlink_to(link.name)
    monkeypatch.setenv("QSHPC_HOME", str(mine))
    with pytest.raises(ResourceError, match=f"{link}, a link on its way, belongs to uid"):
        resolve_resources({}, environ={})
    os.lchown(link, 0, 0)
    assert resolve_resources({}, environ={}).setup == ["echo MINE"]


TEAM = 4243
SITE_DEFAULTS = (
    "from qshpc.submit.config import site_defaults\n"
    "try:\n    print(site_defaults({})[0])\nexcept Exception as e:\n    print(e)\n"
)


@root_only
def test_a_config_file_the_team_can_write_is_refused_with_share_group(tmp_path: Path) -> None:
    """review53 L2: with QSHPC_SHARE_GROUP=1, a 0664 config.toml of the team's group in
    the team's 3775 store (what umask 002 makes) was trusted on main aefb223, though every
    member can write it; the team's folder above it is still fine."""
    home = tmp_path / "team"
    home.mkdir()
    os.chown(home, 0, TEAM)
    home.chmod(0o3775)
    cfg = home / "config.toml"
    cfg.write_text(EVIL)
    os.chown(cfg, 0, TEAM)
    cfg.chmod(0o664)
    env = {**os.environ, "QSHPC_HOME": str(home), "QSHPC_SHARE_GROUP": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    run = [sys.executable, "-c", SITE_DEFAULTS]
    out = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path,
                         extra_groups=[TEAM], timeout=120, check=True)  # fmt: skip
    assert out.stdout.startswith(f"refusing to read {cfg}: group gid {TEAM} can write it (its "
                                 f"mode is 0664)"), out.stdout  # fmt: skip
    assert f"`chmod go-w {cfg}`" in out.stdout
    cfg.chmod(0o644)
    out = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path,
                         extra_groups=[TEAM], timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "{'setup': ['touch /tmp/pwned']}", out.stdout


@root_only
def test_a_build_file_the_team_can_write_is_not_trusted_with_share_group(tmp_path: Path) -> None:
    """review53 L2: a sitecustomize.py of the team's group, 0664, in a $QSHPC_HOME/aer-mpi
    build: every member could put their code in each distributed step (trusted on main
    aefb223 with QSHPC_SHARE_GROUP=1)."""
    from tests.unit.test_fixL import _aer_build

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    prefix = _aer_build(home)
    hook = prefix / "lib" / "python" / "sitecustomize.py"
    hook.write_text("")
    os.chown(hook, 0, TEAM)
    hook.chmod(0o664)
    code = (
        "from pathlib import Path\nfrom qshpc.store.codetrust import code_risk\n"
        f"print(code_risk(Path({str(prefix)!r}), tree=True))\n"
    )
    env = {**os.environ, "QSHPC_SHARE_GROUP": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         extra_groups=[TEAM], timeout=120, check=True)  # fmt: skip
    assert f"group gid {TEAM} can write {hook} (its mode is 0664)" in out.stdout, out.stdout
    assert f"`chmod -R go-w {prefix}`" in out.stdout


@root_only
def test_a_home_aer_build_is_checked_again_when_a_step_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review53 L1: the build was checked when found (locate) and used later by its path;
    on main aefb223 one given to another user in between went on every rank's PYTHONPATH."""
    from qshpc.aer.distributed import install
    from qshpc.errors import UserError
    from tests.unit.test_fixL import _aer_build

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    prefix = _aer_build(home)
    aer = install.at_prefix(prefix, "home")
    assert aer is not None
    site = prefix / install.SITE
    assert install.step_env(aer, {})["PYTHONPATH"].split(":")[0] == str(site.resolve())
    os.chown(site, THEIRS, -1)
    with pytest.raises(UserError, match=f"the MPI build of Aer at {prefix} is not used: {site} "
                       f"belongs to uid {THEIRS}"):  # fmt: skip
        install.step_env(aer, {})


SMALL = (
    "import sys, os\nfrom qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef t(i):\n    return i * int(sys.argv[1])\n"
    "vals = [get(t(i)) for i in range(3)]\n"
    "if os.environ.get('FAIL_AT_END'):\n    raise SystemExit('fail at end')\n"
    "save_result({'who': sys.argv[1], 'vals': vals})\n"
)


def test_another_jobs_job_h5_in_a_job_dir_folder_is_named_and_not_used(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review53 N1: on main aefb223 job A's job.h5 copied into job B's --job-dir folder
    showed as B's: status without a note, `result --json` A's values with rc 0, and
    `--resume` went on with A silently."""
    from tests.conftest import run_cli

    prog = tmp_path / "p.py"
    prog.write_text(SMALL)
    a, b = tmp_path / "A", tmp_path / "B"
    for folder, arg in ((a, "1"), (b, "2")):
        out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(folder), "--", arg)
        assert out.returncode == 0, out.stderr
    ida, idb = ((f / "job_id").read_text().strip() for f in (a, b))
    shutil.copy(a / "job.h5", b / "job.h5")
    want = (f"the job.h5 in folder {b} holds job {ida}, not job {idb}, the one the folder was "
            "made for (its job_id file)")  # fmt: skip
    out = run_cli("status", str(b))
    assert out.returncode == 0 and want in " ".join(out.stdout.split()), out.stdout
    out = run_cli("result", str(b), "--json")
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and not out.stdout, out.stdout
    assert said.startswith(f"qshpc: error: refusing to show the result in {b}: {want}"), said
    assert f"remove its job_id file (`rm {b}/job_id`)" in said and "Traceback" not in said
    (b / "job_id").unlink()  # taken as A's copy: shown
    out = run_cli("result", str(b), "--json")
    assert out.returncode == 0 and '"who": "1"' in out.stdout, out.stderr
    # --resume of a failed job whose folder holds another failed job's store
    fa, fb = tmp_path / "FA", tmp_path / "FB"
    for folder in (fa, fb):
        out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(folder), "--", "1",
                      env={"FAIL_AT_END": "1"})  # fmt: skip
        assert out.returncode == 1, out.stderr
    shutil.copy(fa / "job.h5", fb / "job.h5")
    out = run_cli("run", "--resume", str(fb), "--workers", "0")
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and said.startswith(f"qshpc: error: cannot resume the job in {fb}: "
                                                   f"the job.h5 in folder {fb} holds job"), said  # fmt: skip
    assert "nothing was run" in said and "Traceback" not in said


ROLLBACK = """
import os, shutil, sys, time
from qshpc import distribute_task, get

@distribute_task()
def t(i):
    time.sleep(0.01)
    return i * 2

d = sys.argv[1]
refs = [t(i) for i in range(200)]
[get(r) for r in refs[:20]]
time.sleep(1.2)  # the gets' commit and its checkpoint come after a second
shutil.copy(os.path.join(d, "job.h5"), os.path.join(d, "snap"))
[get(r) for r in refs[20:60]]
time.sleep(1.2)
os.replace(os.path.join(d, "snap"), os.path.join(d, "job.h5"))  # rolled back under the job
time.sleep(1.2)
[get(r) for r in refs[60:]]
"""


def test_a_rank_0_stopped_by_its_own_store_error_is_not_called_killed(
    tmp_path: Path, qshpc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """review53 N3: rank 0 stopped on its own DamagedStoreError (job.h5 rolled back under
    the job) and mpiexec ended the ranks with code 3; on main aefb223 the launcher's last
    line said every rank was ended by an MPI_Abort(3), that rank 0 was "killed or crashed",
    and that "0 finished task results are kept". The launcher's judgement is run here on
    the job as that run left it, with the code mpiexec gave (3)."""
    from qshpc.launch.local import _mark_dead
    from tests.conftest import run_cli

    prog = tmp_path / "rb.py"
    prog.write_text(ROLLBACK)
    for attempt in range(3):  # a loaded machine may fold later than the rollback: again
        job = tmp_path / f"RB{attempt}"
        out = run_cli("run", str(prog), "--workers", "1", "--job-dir", str(job), "--", str(job),
                      env={"QSHPC_CHECKPOINT_S": "0"})  # fmt: skip
        if "DamagedStoreError" in out.stderr:
            break
    assert "DamagedStoreError" in out.stderr, out.stderr
    assert _mark_dead(job, "", 3, [], None) == "FAILED"
    line = " ".join(capsys.readouterr().err.split())
    assert line.startswith(f"qshpc: job {job.name} FAILED: rank 0 stopped on its own error (its "
                           "log ends: qshpc.errors.DamagedStoreError: "), line  # fmt: skip
    assert "MPI_Abort" not in line and "killed" not in line and "0 finished" not in line, line
    assert "the ranks then ended with exit code 3; nothing was folded into its store" in line
    assert "(recoverable: meta, arguments, the log of " in line, line
    assert f"`qshpc status --verify {job}` lists what is readable" in line


def test_a_job_h5_swapped_under_a_running_job_is_named_not_its_journal(tmp_path: Path) -> None:
    """review53 N2: another job's job.h5 put in place of a running job's: rank 0 named
    job.h5, but on main aefb223 every reader (status, --resume) said the job's own journal
    was damaged, the only copy of its results since the last fold."""
    from qshpc.errors import DamagedStoreError
    from qshpc.store import JobReader
    from tests.unit.test_fix42a_readback import rec
    from tests.unit.test_fixN_store import big, running

    ida, idb = "20261206-000000-aaaaaa", "20261206-000000-bbbbbb"
    other, wo = running(tmp_path, ida, off=100.0)
    wo.checkpoint()
    wo.close()
    job, w = running(tmp_path, idb)
    w.checkpoint()
    w.append_task(rec(7, big(7)))
    w.commit()  # in the journal only
    shutil.copy(other / "job.h5", job / "job.h5.x")
    (job / "job.h5.x").replace(job / "job.h5")
    with pytest.raises(DamagedStoreError) as err, JobReader.open(job) as r:
        r.meta()
    text = str(err.value)
    assert text.startswith(f"{job}/job.h5 is damaged: it is not this job's file: job {ida}'s "
                           f"job.h5 put in its place (the folder was made for job {idb}); the "
                           f"journal beside it ({job}/job.journal) holds this job's commits "
                           "since its last fold: keep it"), text  # fmt: skip
    w.close()


def test_a_memory_error_without_text_still_reads_as_a_sentence() -> None:
    """review53 N4: numpy's MemoryError under `ulimit -v` can carry no text; on main
    aefb223 the line read "(400000025 bytes stored: )"."""
    from qshpc.store.encoding_blob import _no_memory

    text = str(_no_memory("J/job.h5", 400000025, MemoryError()))
    assert "(400000025 bytes stored: MemoryError, with no message); its bytes are not" in text
    text = str(_no_memory("J/job.h5", 5, MemoryError("Unable to allocate 38.1 MiB")))
    assert "(5 bytes stored: Unable to allocate 38.1 MiB)" in text


def test_a_copied_job_folder_keeps_one_end_time(tmp_path: Path, qshpc_home: Path) -> None:
    """review53 L3: `qshpc status COPY` of a folder copied while its job ran showed
    "finished -" and a duration that grew at every look on main aefb223; now the copy's
    last sign of life, the same at every look."""
    import json

    from tests.conftest import run_cli
    from tests.faults.test_fix35b import _running

    proc, job = _running(tmp_path, qshpc_home)
    try:
        copy = tmp_path / "backup"
        subprocess.run(["cp", "-a", str(job), str(copy)], check=True)
        looks = [json.loads(run_cli("status", str(copy), "--json").stdout) for _ in range(2)]
        out = run_cli("status", str(copy))
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert [m["state"] for m in looks] == ["FAILED", "FAILED"]
    assert isinstance(looks[0].get("finished"), float), looks[0]
    assert looks[0]["finished"] == looks[1]["finished"] and looks[0]["last_seen"] is True
    assert "last seen " in out.stdout and "finished -" not in out.stdout, out.stdout
