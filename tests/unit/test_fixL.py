"""review50 (session 27, fixL): config files and the home MPI Aer build are held to the
store's "yours alone" rule (F0, F0b); a cache whose user folder cannot be made runs the
job uncached (F1); ``qshpc rm``/``gc`` need ``--force`` for a store damaged in a value (F3).

Another user's file is a real file given to another uid (4242, no account needed: the
owner is what is checked), so those tests need root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc.errors import ResourceError
from qshpc.submit.config import resolve_resources

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
THEIRS = 4242
SETUP = '[slurm]\nsetup = ["touch /tmp/pwned"]\n'


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(mode=0o700)
    work.mkdir(mode=0o700)
    monkeypatch.setenv("QSHPC_HOME", str(home))
    monkeypatch.chdir(work)
    return home, work


@root_only
def test_another_users_config_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On main b8dd831 another user's $QSHPC_HOME/config.toml (a teammate's, in a team's
    store) put its setup lines into the batch script."""
    home, work = _home(tmp_path, monkeypatch)
    cfg = home / "config.toml"
    cfg.write_text(SETUP)
    os.chown(cfg, THEIRS, -1)
    with pytest.raises(ResourceError) as err:
        resolve_resources({}, environ={})
    text = str(err.value)
    assert text.startswith(f"refusing to read {cfg}: it belongs to uid {THEIRS}, so another user")
    assert f"`mv {cfg} {cfg}.theirs`" in text and "point QSHPC_HOME at a folder" in text
    os.chown(cfg, 0, -1)  # root's is fine
    assert resolve_resources({}, environ={}).setup == ["touch /tmp/pwned"]
    cfg.unlink()
    local = work / "qshpc.toml"
    local.write_text(SETUP)
    os.chown(local, THEIRS, THEIRS)
    with pytest.raises(ResourceError, match=f"{local}: it belongs to uid {THEIRS}.*a folder of"):
        resolve_resources({}, environ={})


@root_only
def test_a_config_file_a_foreign_group_can_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = _home(tmp_path, monkeypatch)
    cfg = home / "config.toml"
    cfg.write_text(SETUP)
    os.chown(cfg, -1, THEIRS)
    cfg.chmod(0o664)
    with pytest.raises(ResourceError, match=f"group gid {THEIRS} can write it .*0664"):
        resolve_resources({}, environ={})
    monkeypatch.setenv("QSHPC_SHARE_GROUP", "1")  # not a group of the user's: still refused
    with pytest.raises(ResourceError, match=f"group gid {THEIRS} can write it"):
        resolve_resources({}, environ={})


def test_a_config_file_others_can_write_or_swap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any user: the user's own file every user can write, or in a folder they can write
    (a 0777 project folder: anyone can rename it and put theirs there)."""
    home, work = _home(tmp_path, monkeypatch)
    cfg = home / "config.toml"
    cfg.write_text(SETUP)
    cfg.chmod(0o646)
    with pytest.raises(ResourceError, match=rf"every user can write it \(its mode is 0646\).*"
                       rf"`chmod go-w {cfg}`"):  # fmt: skip
        resolve_resources({}, environ={})
    cfg.chmod(0o644)
    assert resolve_resources({}, environ={}).setup == ["touch /tmp/pwned"]
    cfg.unlink()
    (work / "qshpc.toml").write_text(SETUP)
    work.chmod(0o777)
    with pytest.raises(ResourceError, match=rf"every user can write the folder above it, {work} "
                       rf"\(its mode is 0777\).*`chmod go-w {work}`"):  # fmt: skip
        resolve_resources({}, environ={})
    work.chmod(0o1777)  # sticky: others cannot rename the user's file (as /tmp)
    assert resolve_resources({}, environ={}).setup == ["touch /tmp/pwned"]
    work.chmod(0o700)


def test_a_config_path_that_is_not_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO or a folder named qshpc.toml was passed over without a word."""
    _, work = _home(tmp_path, monkeypatch)
    os.mkfifo(work / "qshpc.toml")
    with pytest.raises(ResourceError, match=r"qshpc\.toml is not a file .*remove or rename it"):
        resolve_resources({}, environ={})


def _aer_build(home: Path) -> Path:
    """``$QSHPC_HOME/aer-mpi`` laid out as a build (what :func:`locate` reads: the stamp and
    an extension module whose bytes name an MPI library), made by the user."""
    prefix = home / "aer-mpi"
    backends = prefix / "lib" / "python" / "qiskit_aer" / "backends"
    backends.mkdir(parents=True, mode=0o755)
    (backends / "controller_wrappers.cpython-311-x86_64-linux-gnu.so").write_bytes(
        b"\x7fELF...libmpi.so.12\x00..."
    )
    (prefix / "lib" / "python" / "qiskit_aer" / "VERSION.txt").write_text("0.17.2\n")
    (prefix / "build-info.json").write_text('{"aer_version": "0.17.2"}\n')
    for folder in (prefix, *prefix.rglob("*")):
        folder.chmod(0o755 if folder.is_dir() else 0o644)
    return prefix


LOCATE = (
    "from qshpc.aer.distributed.install import locate, why_missing\n"
    "aer = locate()\nprint(aer.source if aer else 'none')\nprint(why_missing())\n"
)


def _locate(copy: Path, home: Path) -> tuple[str, str, str]:
    """What a pip-installed qshpc (a copy without pyproject.toml) finds: the source, why
    none, and its warnings."""
    env = {**os.environ, "PYTHONPATH": str(copy), "QSHPC_HOME": str(home)}
    env.pop("QSHPC_AER_MPI", None)
    out = subprocess.run([sys.executable, "-c", LOCATE], capture_output=True, text=True,
                         env=env, cwd=copy, timeout=120, check=True)  # fmt: skip
    source, why = out.stdout.split("\n", 1)
    return source, why, out.stderr


@root_only
def test_another_users_home_aer_build_is_not_used(tmp_path: Path) -> None:
    """On main b8dd831 a team member's $QSHPC_HOME/aer-mpi was put first on every
    distributed step's PYTHONPATH (a sitecustomize.py there ran as the user)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    prefix = _aer_build(home)
    copy = tmp_path / "pip"
    shutil.copytree(Path(__file__).resolve().parents[2] / "qshpc", copy / "qshpc")
    assert _locate(copy, home)[0] == "home"
    site = prefix / "lib" / "python"
    os.chown(site, THEIRS, -1)
    source, why, warned = _locate(copy, home)
    assert source != "home"
    assert f"the MPI build of Aer at {prefix} is not used: {site} belongs to uid {THEIRS}" in warned
    assert f"{site} belongs to uid {THEIRS}" in why and "QSHPC_AER_MPI=DIR" in why
    os.chown(site, 0, -1)
    site.chmod(0o757)
    source, why, _ = _locate(copy, home)
    assert source != "home" and f"every user can write {site} (its mode is 0757)" in why
    assert f"`chmod -R go-w {prefix}`" in why
    site.chmod(0o755)
    source, why, warned = _locate(copy, home)
    assert source == "home" and not warned


PROG = (
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef sq(i):\n    return i * i\n"
    "save_result(get([sq(i) for i in range(3)]))\n"
)
mounts = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root"
)


@mounts
@pytest.mark.parametrize("how", ["ro", "nr_inodes=3"])
def test_a_cache_whose_user_folder_cannot_be_made_runs_the_job_uncached(
    tmp_path: Path, how: str
) -> None:
    """On main b8dd831 a read-only cache (or one out of inodes) without the user's folder in
    it failed the job, exit 2, before anything ran: `cannot create your folder in the cache`."""
    from tests.conftest import run_cli

    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m" + ("" if how == "ro" else f",{how}"),
                    "tmpfs", str(fs)], check=True)  # fmt: skip
    try:
        cache = fs / "c"
        cache.mkdir(mode=0o700)
        (cache / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
        if how == "ro":
            subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        prog = tmp_path / "p.py"
        prog.write_text(PROG)
        home = tmp_path / "home"
        out = run_cli("run", str(prog), "--workers", "0", "--cache-dir", str(cache),
                      env={"QSHPC_HOME": str(home)})  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "SUCCEEDED (3 tasks run)" in out.stdout + out.stderr
        want = f"qshpc: cache: cannot create your folder in the cache {cache}: " + (
            "Read-only file system (" if how == "ro" else "No space left on device ("
        )
        assert out.stderr.count(want) == 1, out.stderr
        assert "--no-cache runs without it): tasks run without the cache" in out.stderr
        if how != "ro":
            assert "inodes used (df -i)" in out.stderr
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def test_an_unsafe_cache_folder_is_still_refused(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    cache = tmp_path / "c"
    cache.mkdir()
    cache.chmod(0o777)
    prog = tmp_path / "p.py"
    prog.write_text(PROG)
    out = run_cli("run", str(prog), "--workers", "0", "--cache-dir", str(cache),
                  env={"QSHPC_HOME": str(tmp_path / "home")})  # fmt: skip
    assert out.returncode == 2 and "can be written by every user" in out.stderr, out.stderr


def _ended_job(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A job of PROG run to its end with ``--workers 0``: the environment and its folder."""
    from tests.conftest import run_cli

    env = {"QSHPC_HOME": str(tmp_path / "home")}
    prog = tmp_path / "p.py"
    prog.write_text(PROG)
    assert run_cli("run", str(prog), "--workers", "0", env=env).returncode == 0
    (job,) = (tmp_path / "home" / "jobs").iterdir()
    return env, job


def test_rm_and_gc_keep_a_store_damaged_in_its_saved_result(tmp_path: Path) -> None:
    """On main b8dd831 `qshpc rm J` said "removed J (SUCCEEDED)" and gc "would remove J" for a
    job whose saved result was damaged (status: DAMAGED, 3 of 3 task results recoverable)."""
    from tests.conftest import run_cli

    env, job = _ended_job(tmp_path)
    store = job / "job.h5"
    data = bytearray(store.read_bytes())
    data[-100] ^= 0xFF  # in the saved result, the last value written
    store.write_bytes(bytes(data))
    gc = run_cli("gc", "--older-than", "0s", "--dry-run", env=env)
    assert gc.returncode == 0 and "would remove 0 job(s)" in gc.stdout, gc.stdout + gc.stderr
    assert f"skipped 1 damaged or unreadable job(s) ({job.name}): see `qshpc status JOB`" in (
        gc.stdout
    )
    rm = run_cli("rm", job.name, env=env)
    assert rm.returncode == 2 and job.is_dir(), rm.stdout + rm.stderr
    assert f"job {job.name}'s store is damaged (recoverable: meta, arguments, 3 of 3 task " in (
        rm.stderr
    )
    assert "pass --force to remove it" in rm.stderr
    assert run_cli("gc", "--older-than", "0s", env=env).returncode == 0 and job.is_dir()
    rm = run_cli("rm", job.name, "--force", env=env)
    assert rm.returncode == 0 and not job.exists(), rm.stdout + rm.stderr


@root_only
def test_gc_does_not_tell_to_rm_a_teammates_damaged_job(tmp_path: Path) -> None:
    """On main b8dd831 gc said "skipped 1 damaged ...: remove with `qshpc rm JOB --force`"
    for a job another user owns, which rm refuses (review50 F5)."""
    from tests.conftest import run_cli

    env, job = _ended_job(tmp_path)
    os.truncate(job / "job.h5", 20000)
    for path in (job, *job.rglob("*")):
        os.chown(path, THEIRS, -1)
    gc = run_cli("gc", "--older-than", "0s", env=env)
    assert gc.returncode == 0 and job.is_dir(), gc.stdout + gc.stderr
    assert "left 1 job(s) of other users" in gc.stdout and "rm JOB --force" not in gc.stdout


SLOW = (
    "import time\nfrom qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef slow(i):\n    time.sleep(0.3 if i < 2 else 60)\n    return i\n"
    "save_result(get([slow(i) for i in range(4)]))\n"
)


def _killed_job(home: Path, prog: Path) -> Path:
    """The folder of a job of :data:`SLOW` (written to ``prog``) killed (-9) once two of
    its results are committed, while the third runs."""
    import time

    from tests.conftest import run_cli

    env = {**os.environ, "QSHPC_HOME": str(home)}
    prog.write_text(SLOW)
    run = subprocess.Popen([sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    jobs: list[Path] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = list((home / "jobs").glob("*")) if (home / "jobs").is_dir() else []
            if jobs and "2 done" in run_cli("status", jobs[0].name, env=env).stdout:
                break
            time.sleep(0.2)
    finally:
        run.kill()
        run.wait()
    (job,) = jobs
    return job


@mounts
def test_a_crash_that_cannot_be_recorded_keeps_its_end_time(tmp_path: Path) -> None:
    """On main b8dd831 a crashed job whose store the reader could not write (read-only,
    full, a teammate's) was "found FAILED at <now>" at each look, its duration growing."""
    import json
    import time

    from tests.conftest import run_cli

    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(fs)], check=True)
    try:
        home = fs / "home"
        job = _killed_job(home, tmp_path / "slow.py")
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        looks = []
        for _ in range(2):
            out = run_cli("status", job.name, "--json", env={"QSHPC_HOME": str(home)})
            looks.append(json.loads(out.stdout))
            time.sleep(1.1)
        assert [m["state"] for m in looks] == ["FAILED", "FAILED"]
        assert looks[0]["finished"] == looks[1]["finished"], looks
        assert looks[0]["last_seen"] is True and not looks[0].get("found_ended")
        text = run_cli("status", job.name, env={"QSHPC_HOME": str(home)}).stdout
        assert "   last seen " in text, text
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=True)


@mounts
def test_submit_on_a_full_store_says_so_in_words(tmp_path: Path) -> None:
    """On main b8dd831: `cannot copy working_dir ...: ('.../data.bin', '...', "[Errno 28] No
    space left on device: ...")`, a raw shutil tuple, no df, no word of the job's folder."""
    from tests.conftest import run_cli

    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(fs)], check=True)
    try:
        work = tmp_path / "wd"
        work.mkdir()
        (work / "p.py").write_text(PROG)
        (work / "data.bin").write_bytes(os.urandom(6_000_000))
        out = run_cli("submit", "p.py", "--nodes", "1", cwd=work,
                      env={"QSHPC_HOME": str(fs / "home")})  # fmt: skip
        assert out.returncode == 2, out.stdout + out.stderr
        assert "No space left on device: '" in out.stderr and "('" not in out.stderr
        assert "has no room for the 6.0 MB to copy: free space (df -h) or inodes (df -i)" in (
            out.stderr
        )
        assert "(nothing was submitted; the job's folder is removed)" in out.stderr
        assert list((fs / "home" / "jobs").iterdir()) == []
    finally:
        subprocess.run(["umount", str(fs)], check=True)


@mounts
@pytest.mark.parametrize("inodes", [5, 6])
def test_a_store_out_of_inodes_is_told_to_look_at_df_i(tmp_path: Path, inodes: int) -> None:
    """On main b8dd831 a file system out of inodes, with 67 MB free, was told `free space
    (df -h)` (5 inodes: job.h5 could not be made) or nothing at all (6: `cannot lock job`)."""
    from tests.conftest import run_cli

    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=64m,nr_inodes={inodes}", "tmpfs",
                    str(fs)], check=True)  # fmt: skip
    try:
        (fs / "h").mkdir(mode=0o700)
        prog = tmp_path / "p.py"
        prog.write_text(PROG)
        out = run_cli("run", str(prog), "--workers", "0", env={"QSHPC_HOME": str(fs / "h")})
        assert out.returncode == 2, out.stdout + out.stderr
        assert "No space left on device" in out.stderr or "no space left" in out.stderr
        assert "df -i" in out.stderr, out.stderr
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def test_a_resume_of_a_job_with_a_damaged_journal_names_a_way_out(tmp_path: Path) -> None:
    """On main b8dd831: `... job.journal is damaged: from byte N on ... (recoverable: ...);
    nothing was run` and no way on named (review50 F5)."""

    from tests.conftest import run_cli

    home = tmp_path / "home"
    env = {**os.environ, "QSHPC_HOME": str(home)}
    prog = tmp_path / "slow.py"
    job = _killed_job(home, prog)
    journal = job / "job.journal"
    data = bytearray(journal.read_bytes())
    data[len(data) // 2] ^= 0xFF
    journal.write_bytes(bytes(data))
    out = run_cli("run", str(prog), "--resume", job.name, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "job.journal is damaged" in out.stderr and "; nothing was run" in out.stderr
    # (fixO, fixR: one refusal of a resume over a damaged store, with its way on)
    assert "(recoverable: meta, arguments" in out.stderr
    assert f"`qshpc status --verify {job.name}` lists what is readable" in out.stderr
    assert "JobReader.open(JOB_DIR).task_result(TASK_ID)" in out.stderr
    assert "Run the program again as a new job (without --resume)" in out.stderr


BLOBS = (
    "import os\nfrom qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef blob(i):\n    return os.urandom(50_000)\n"
    "save_result(len(get([blob(i) for i in range(20)])))\n"
)


@mounts
def test_a_commit_that_meets_a_full_disk_keeps_what_fits(tmp_path: Path) -> None:
    """On main b8dd831 a commit the disk could not take whole lost its whole batch (20
    results of 50 KB with ~950 KB free: `0 done`), though most of it fitted (review50 F2)."""
    import re

    from tests.conftest import run_cli

    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(fs)], check=True)
    try:
        (fs / "h").mkdir(mode=0o700)
        env = {"QSHPC_HOME": str(fs / "h")}
        free = shutil.disk_usage(fs).free
        (fs / "filler").write_bytes(b"\0" * (free - 2_000_000))  # ~2 MB left, 1 MB for the job
        prog = tmp_path / "blobs.py"
        prog.write_text(BLOBS)
        out = run_cli("run", str(prog), "--workers", "0", env=env)
        assert out.returncode != 0, out.stdout + out.stderr
        kept = re.search(r"of the (\d+) task result\(s\) of that commit (\d+) were committed, "
                         r"(\d+) lost \(they run again on resume\)", out.stderr)  # fmt: skip
        assert kept is not None, out.stderr
        assert int(kept[2]) >= 5 and int(kept[2]) + int(kept[3]) == int(kept[1])
        (job,) = (fs / "h" / "jobs").iterdir()
        status = run_cli("status", job.name, "--json", env=env)
        import json

        done = json.loads(status.stdout)["task_counts"]["SUCCEEDED"]
        assert done >= int(kept[2]), status.stdout
        (fs / "filler").unlink()
        out = run_cli("run", str(prog), "--resume", job.name, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        status = run_cli("status", job.name, "--verify", env=env)
        assert status.returncode == 0 and status.stdout.startswith("SUCCEEDED"), status.stdout
    finally:
        subprocess.run(["umount", str(fs)], check=True)


def test_a_fifo_in_place_of_an_ended_jobs_journal_names_the_way_on(tmp_path: Path) -> None:
    """On main b8dd831: `cannot read J/job.journal: J/job.journal is not a regular file`, no
    fix, though job.h5 was whole (review50 F5)."""
    from tests.conftest import run_cli

    env, job = _ended_job(tmp_path)
    journal = job / "job.journal"
    os.mkfifo(journal)
    out = run_cli("status", job.name, env=env, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"move it aside (mv {journal} {journal}.bad), and job.h5 is read alone" in out.stderr
    journal.rename(job / "job.journal.bad")
    out = run_cli("result", job.name, env=env, timeout=60)
    assert out.returncode == 0 and "[0, 1, 4]" in out.stdout, out.stdout + out.stderr
