"""Session 21's fault hunt (hunt21b): what qshpc keeps on disk against sparse giants,
FIFOs, full disks and folders one may not write.

Each test failed on b295950 (what it did there is said in the test); see
docs/bad-input.md, "Session 21, hunt21b".
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, tmpfs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid, mount)")

GIANT = 100 << 30  # a sparse 100 GiB: no block of it is on disk


def _python(
    code: str, home: Path, limit_as: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (under an address-space limit when given)."""

    def cap() -> None:
        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=cap,
    )


def test_a_sparse_giant_json_arguments_file_is_one_line(tmp_path: Path) -> None:
    # On b295950, `qshpc run prog.py --arguments big.json` (a sparse 100 GiB file, or
    # any file larger than memory) was a MemoryError traceback from rank 0, exit 1.
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(GIANT)
    code = (
        "import sys\nfrom qshpc.cli import main\n"
        f"sys.argv = ['qshpc', 'run', {str(prog)!r}, '--arguments', {str(big)!r}, "
        "'--workers', '0']\nmain()\n"
    )
    out = _python(code, tmp_path / "home", limit_as=4 << 30, timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr, out.stderr
    # (one line: since session 28, fixO, its first byte, a NUL, refuses it before the size)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"qshpc: error: cannot load arguments from {big}: "
    ), out.stderr
    assert "qshpc.save_arguments" in lines[0]


def _entry_made_a_sparse_giant(root: Path) -> tuple[str, Path]:
    """One entry of this user's in a cache at ``root``, then replaced by a sparse giant
    under its key (0600, this user's: a lookup trusts it)."""
    from qshpc.cache.store import CacheDir

    cache = CacheDir(root, shared=False)
    key = "ab" + "0" * 62
    assert cache.put_value(key, 42, "f", "job", 0)
    path = cache.path_of(key)
    path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, GIANT)
    os.close(fd)
    return key, path


def test_gc_verify_of_ones_own_sparse_giant_removes_it(tmp_path: Path) -> None:
    # On b295950, `qshpc cache gc --verify` read the whole 100 GiB file: a MemoryError
    # traceback (exit 1), and nothing removed.
    root = tmp_path / "cache"
    _, path = _entry_made_a_sparse_giant(root)
    code = (
        "import sys\nfrom qshpc.cli import main\n"
        f"sys.argv = ['qshpc', 'cache', 'gc', '--verify', '--cache-dir', {str(root)!r}]\n"
        "main()\n"
    )
    out = _python(code, tmp_path / "home", limit_as=4 << 30)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    assert "removed 1 entry (100.0 GB); kept 0 (0 B); 1 damaged" in out.stdout
    assert not path.exists()


def test_a_lookup_of_ones_own_sparse_giant_lets_the_result_be_cached_again(
    tmp_path: Path,
) -> None:
    # On b295950 a lookup read it whole (MemoryError: a miss) and left it there; the
    # write of the result then kept "the entry that is there": the key was computed by
    # every job and never cached again, with no word said.
    from qshpc.cache.store import CacheDir

    key, path = _entry_made_a_sparse_giant(tmp_path / "cache")
    cache = CacheDir(tmp_path / "cache", shared=False)
    assert cache.get(key) is None
    assert cache.damaged == 1 and not path.exists()
    assert cache.put_value(key, 42, "f", "job", 0)
    hit = cache.get(key)
    assert hit is not None and hit.value == 42


def _data_code(home: Path, body: str) -> str:
    return (
        "import os\nfrom qshpc.client import files\nfrom qshpc.errors import UserError\n"
        f"d = files.data_dir()\n{body}\n"
    )


def test_a_fifo_in_the_data_folder_is_refused_without_waiting(tmp_path: Path) -> None:
    # On b295950, client.file_download("f") of a FIFO in the data folder waited for a
    # writer for good (the open blocks).
    body = (
        "os.mkfifo(d / 'f')\n"
        "try:\n"
        f"    files.download('f', download_location={str(tmp_path)!r})\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    out = _python(_data_code(tmp_path / "home", body), tmp_path / "home", timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "'f' in the data folder is not a regular file"


def test_a_download_onto_a_fifo_or_a_full_disk_leaves_no_torn_file(tmp_path: Path) -> None:
    # On b295950 a FIFO at the target name made the download wait for a reader for good,
    # and a full disk left a torn copy under the name (an older file there cut short).
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        home = tmp_path / "home"
        body = (
            f"(d / 'big').write_bytes(os.urandom(3 << 20))\n(d / 'small').write_bytes(b'x')\n"
            f"disk = {str(disk)!r}\n"
            "os.mkfifo(os.path.join(disk, 'out'))\n"
            "print(files.download('small', 'out', disk))\n"
            "with open(os.path.join(disk, 'keep'), 'wb') as f:\n"
            "    f.write(b'older')\n"
            "try:\n"
            "    files.download('big', 'keep', disk)\n"
            "except UserError as exc:\n"
            "    print(exc)\n"
        )
        out = _python(_data_code(home, body), home, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "out",
            f"cannot write {disk}/keep: No space left on device",
        ]
        assert (disk / "out").read_bytes() == b"x"
        assert (disk / "keep").read_bytes() == b"older"
        assert sorted(os.listdir(disk)) == ["keep", "out"]  # no part file left


@needs_root
def test_delete_and_list_in_a_data_folder_one_may_not_write_or_read_are_one_line(
    open_dir: Path,
) -> None:
    # On b295950, client.file_delete() in a folder one may not write raised
    # PermissionError (not the API's UserError), and client.files() in one that cannot
    # be read did so too.
    home = open_dir / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    code = (
        "import os\nfrom qshpc.client import files\nfrom qshpc.errors import UserError\n"
        "import qshpc.store.perms, qshpc.jobs.paths, qshpc.settings\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "d = files.data_dir()\n(d / 'f').write_bytes(b'x')\n"
        "os.chmod(d, 0o500)\n"
        "for call in (lambda: files.delete('f'), lambda: os.chmod(d, 0o300), files.list_files):\n"
        "    try:\n"
        "        call()\n"
        "    except UserError as exc:\n"
        "        print(exc)\n"
        "os.chmod(d, 0o700)\n"
        "print(files.delete('f'), files.list_files())\n"
    )
    out = _python(code, home)
    assert out.returncode == 0, out.stderr
    data = home / "data"
    assert out.stdout.splitlines() == [
        f"cannot delete {data}/f: Permission denied",
        f"cannot list the data folder {data}: Permission denied",
        "Requested file was deleted. []",
    ]


def test_gc_leaves_a_job_folder_linked_from_elsewhere(tmp_path: Path) -> None:
    # On b295950 a link in the jobs folder to a job moved elsewhere (to scratch) was
    # "would remove" under `qshpc gc --dry-run`, then `qshpc gc` kept it saying "Cannot
    # call rmtree on a symbolic link (... check the folder is writable)", exit 1, at
    # every gc. `qshpc rm` refuses such a folder; gc now leaves it too.
    home = tmp_path / "home"
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    env = {"QSHPC_HOME": str(home)}
    assert run_cli("run", str(prog), "--workers", "0", env=env).returncode == 0
    (job,) = (home / "jobs").iterdir()
    moved = tmp_path / "scratch" / job.name
    moved.parent.mkdir()
    job.rename(moved)
    job.symlink_to(moved)
    for dry in (["--dry-run"], []):
        out = run_cli("gc", "--older-than", "0d", *dry, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stderr == "" and job.name not in out.stdout, out.stdout
    assert (moved / "job.h5").is_file() and job.is_symlink()
    assert run_cli("result", job.name, env=env).stdout.strip() == "1"


@needs_root
def test_a_members_folder_squatted_in_a_shared_cache_names_who_can_remove_it(
    open_dir: Path,
) -> None:
    # On b295950 a member's folder made by another member (anyone in the group may
    # create a folder in the 3770 cache; the sticky bit lets only its owner remove it)
    # refused that member's every `--cache` run with "remove it", which they cannot.
    root = open_dir / "cache"
    root.mkdir()
    os.chown(root, 0, 4242)
    os.chmod(root, 0o3770)
    squat = root / "65533"
    squat.mkdir()
    os.chown(squat, 65534, 4242)
    os.chmod(squat, 0o2750)
    code = (
        "import os\nfrom qshpc.cache.store import CacheDir\nfrom qshpc.errors import UserError\n"
        "import qshpc.cache.folder, qshpc.settings, pwd\n"
        "os.setgroups([4242]); os.setgid(65533); os.setuid(65533)\n"
        "try:\n"
        f"    CacheDir({str(root)!r}, shared=True)\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    out = _python(code, open_dir / "home")
    assert out.returncode == 0, out.stderr
    assert "(uid 65534)" in out.stdout and "remove it or choose" not in out.stdout, out.stdout
    assert out.stdout.strip().endswith(
        "can remove it: ask them to, or choose another --cache-dir"
    ), out.stdout
    assert f"(or the owner of {root})" in out.stdout


TEAM_GID = 4242


def _team_store(base: Path) -> Path:
    """A team's store as docs/store.md sets it up (3770, the team's group): its home."""
    home = base / "team"
    (home / "jobs").mkdir(parents=True)
    for d in (home, home / "jobs"):
        os.chown(d, -1, TEAM_GID)
        os.chmod(d, 0o3770)
    return home


@needs_root
def test_gc_and_rm_in_a_teams_store_leave_the_other_members_jobs(tmp_path: Path) -> None:
    # On b295950 `qshpc gc` in a team's store (docs/store.md, "Sharing a store") took
    # every member's ended jobs: a member's gc could not remove them ("Permission denied
    # (... check the folder is writable)", exit 1 at every gc), root's removed them;
    # `qshpc rm` of a teammate's job said the same.
    home = _team_store(tmp_path)
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    env = {"QSHPC_HOME": str(home), "QSHPC_SHARE_GROUP": "1"}
    for _ in range(2):
        assert run_cli("run", str(prog), "--workers", "0", env=env).returncode == 0
    theirs, mine = sorted((home / "jobs").iterdir(), key=lambda d: d.stat().st_ctime_ns)
    for path in (theirs, *theirs.rglob("*")):
        os.chown(path, 65534, TEAM_GID, follow_symlinks=False)
    dry = run_cli("gc", "--older-than", "0d", "--dry-run", env=env)
    assert dry.returncode == 0 and theirs.name not in dry.stdout, dry.stdout
    assert "would remove 1 job(s)" in dry.stdout
    assert "left 1 job(s) of other users (only its owner removes a job)" in dry.stdout
    rm = run_cli("rm", theirs.name, env=env)
    assert rm.returncode == 2 and rm.stderr.strip() == (
        f"qshpc: error: job {theirs.name} belongs to nobody (uid 65534): only its owner can "
        "remove it"
    ), rm.stderr
    gc = run_cli("gc", "--older-than", "0d", env=env)
    assert gc.returncode == 0 and gc.stderr == "", gc.stderr
    assert f"removed {mine.name}" in gc.stdout and theirs.name not in gc.stdout
    assert (theirs / "job.h5").is_file() and not mine.exists()


@needs_root
def test_cancel_of_a_teammates_running_job_is_one_line(open_dir: Path) -> None:
    # On b295950 `qshpc cancel JOB` of a job another member runs in a team's store was a
    # PermissionError traceback (its rank 0 cannot be signalled by another user).
    import time

    home = _team_store(open_dir)
    prog = open_dir / "p.py"
    prog.write_text("import time\nfrom qshpc import save_result\ntime.sleep(60)\nsave_result(1)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home)}
    env["QSHPC_SHARE_GROUP"] = "1"
    run = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((home / "jobs").glob("*/job.h5")) and time.monotonic() < deadline:
            time.sleep(0.1)
        (job,) = (home / "jobs").iterdir()
        while "RUNNING" not in _status(job, env) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Another member: the interpreter's files are root's alone (/root), so the
        # process may read (not write) any file; signals are not a matter of files.
        member = ["setpriv", "--reuid=65534", "--regid=65534", f"--groups={TEAM_GID}"]
        member += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        out = subprocess.run(
            [*member, sys.executable, "-m", "qshpc", "cancel", job.name],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
        assert out.stderr.strip() == (
            f"qshpc: error: cannot cancel job {job.name}: Operation not permitted (the job "
            "belongs to root (uid 0): only its owner can cancel it)"
        )
        assert run.poll() is None  # the run goes on
    finally:
        run.terminate()
        run.wait(60)


def _status(job: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "qshpc", "status", str(job)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout


@needs_root
def test_a_job_path_one_may_not_enter_says_so(open_dir: Path) -> None:
    # On b295950 `qshpc status /their/home/jobs/JOB` of another user's private job was
    # "no job ...: not a job directory and not a job id under ...".
    home = open_dir / "home"
    prog = open_dir / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    assert (
        run_cli("run", str(prog), "--workers", "0", env={"QSHPC_HOME": str(home)}).returncode == 0
    )
    (job,) = (home / "jobs").iterdir()  # 0700, root's
    code = (
        "import os\nfrom qshpc.jobs.paths import resolve_job_dir\n"
        "from qshpc.errors import JobNotFoundError\nimport qshpc.settings\n"
        # (imported as root: the uid taken below cannot read root's Python to import them)
        "import qshpc.store.perms\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    resolve_job_dir({str(job)!r})\n"
        "except JobNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    out = _python(code, open_dir / "other home")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"cannot read the job {str(job)!r}: Permission denied ({job}); another user's job is "
        "readable only when they share it with your group (QSHPC_SHARE_GROUP=1, docs/store.md)"
    )
