"""hunt16: faults re-found after session 15's hunt was lost: concurrent readers and
removers of a job, files beside a store replaced by links and FIFOs, a team store.

Real processes and files throughout; mocks only to inject a fault at a chosen moment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

#: A job's rank 0: commits ``N`` records (through the journal), says so, waits to be killed.
WRITER = """
import os, socket, sys, time
from pathlib import Path
from qshpc.store import JobWriter, TaskRecord
job_dir, n = Path(sys.argv[1]), int(sys.argv[2])
rank0 = {"rank": 0, "host": socket.gethostname(), "pid": os.getpid()}
w = JobWriter.open(job_dir, {"mpi_size": 1, "ranks": [rank0], "started": time.time()})
for i in range(n):
    t = time.time()
    w.append_task(TaskRecord(
        task_id=str(i), key=f"{i:064x}", function="m.f", state="SUCCEEDED", attempt=1,
        rank=0, host="h", submitted=t, started=t, finished=t, seed=i,
        result={"i": i, "pad": "x" * 2000}, provenance={},
    ))
    if i % 10 == 9:
        w.commit()
w.commit()
print("ready", flush=True)
time.sleep(600)
"""


#: ``qshpc status`` as a reader process, its fold slowed (the fault injected: a slow disk)
#: so that readers started together overlap in it.
SLOW_STATUS = """
import sys, time
from qshpc.store import snapshot, writer
fold, rewrite = snapshot.fold, writer.snapshot
def slow_fold(*args, **kwargs):
    time.sleep(0.4)
    return fold(*args, **kwargs)
def staggered(*args, **kwargs):
    time.sleep(float(sys.argv[2]))
    return rewrite(*args, **kwargs)
snapshot.fold, writer.snapshot = slow_fold, staggered
from qshpc.client.job import open_job
print(open_job(sys.argv[1]).status())
"""


def _killed_job(home: Path, name: str, records: int = 300) -> Path:
    """A job under ``home`` whose rank 0 was SIGKILLed with its records in the journal."""
    from qshpc.store.jobfile import create_job

    job = home / "jobs" / name
    create_job(job, {"id": name, "created": time.time()}, {})
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(job), str(records)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert (job / "job.journal").exists()
    return job


def _stored(job: Path) -> tuple[int, object]:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        r.verify()
        return len(r.tasks()), r.meta().get("state")


@pytest.mark.timeout(240)
def test_concurrent_status_of_a_killed_job_keeps_its_store(qshpc_home: Path) -> None:
    # On e7cd270 each `qshpc status` of a killed job folded its journal into job.h5
    # without the job lock, through the one temporary copy job.h5.tmp: with four at once,
    # about one round in eight left the store DAMAGED ("recoverable: nothing"); with the
    # fold slowed, every round.
    for k in range(3):
        job = _killed_job(qshpc_home, f"20261204-1200{k:02d}-abcdef")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SLOW_STATUS, job.name, str(0.15 * i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0 and out.startswith("FAILED"), (out, err)
        assert _stored(job) == (300, "RUNNING"), k  # every record; FAILED is in status.json
        assert not (job / "job.journal").exists()


#: A ``qshpc run --resume``'s rank 0 that took the job's lock (its store still says how the
#: last run ended until it opens the store).
RESUMES = """
import sys, time
from pathlib import Path
from qshpc.store.lock import JobLock
with JobLock(Path(sys.argv[1]), "qshpc run --resume"):
    print("held", flush=True)
    time.sleep(60)
"""


def _failed_job(tmp_path: Path) -> Path:
    prog = tmp_path / "fails.py"
    # It fails while the file "fail" is beside it (a --resume runs the job's own program).
    prog.write_text(
        "from pathlib import Path\n"
        "if (Path(__file__).parent / 'fail').exists():\n"
        "    raise RuntimeError('boom')\n"
    )
    (tmp_path / "fail").touch()
    out = run_cli("run", str(prog), "--workers", "0", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    return job


def _resume_takes(job: Path, procs: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RESUMES, str(job)], stdout=subprocess.PIPE, text=True
    )
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"


@pytest.mark.parametrize("command", ["gc", "rm"])
def test_gc_or_rm_racing_a_resume_keeps_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from typer.testing import CliRunner

    from qshpc.cli import app as cli
    from qshpc.cli import ux

    if not cli.app.registered_commands:
        cli._register()

    job = _failed_job(tmp_path)
    procs: list[subprocess.Popen[str]] = []
    # The fault: a resume's rank 0 takes the job right after gc/rm read its state.
    if command == "gc":
        collect = ux.collect

        def then_resumed(*args: object, **kwargs: object) -> object:
            found = collect(*args, **kwargs)  # type: ignore[arg-type]
            _resume_takes(job, procs)
            return found

        monkeypatch.setattr(ux, "collect", then_resumed)
        argv = ["gc", "--older-than", "0s"]
    else:
        held = ux._held

        def then_resumed_(job_dir: Path) -> bool:
            seen = held(job_dir)
            _resume_takes(job, procs)
            return seen

        monkeypatch.setattr(ux, "_held", then_resumed_)
        argv = ["rm", job.name]
    try:
        # On e7cd270 both removed the folder of the job being resumed.
        out = CliRunner().invoke(cli.app, argv)
        assert job.is_dir(), out.output
        if command == "gc":
            assert out.exit_code == 0, out.output
            assert "removed 0 job(s)" in out.output and "kept 1 running/queued" in out.output
        else:
            assert out.exit_code == 2, out.output
            assert "a run took it meanwhile" in out.output, out.output
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
    # Once the resume is gone, the job goes as before.
    out = run_cli(*argv)
    assert out.returncode == 0 and not job.exists(), out.stdout + out.stderr


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_resume_never_writes_through_a_reserve_that_is_a_link_or_a_fifo(
    tmp_path: Path, kind: str
) -> None:
    job = _failed_job(tmp_path)
    precious = tmp_path / "thesis.tex"
    precious.write_text("years of work\n")
    reserve = job / "job.reserve"
    reserve.unlink(missing_ok=True)
    if kind == "symlink":
        reserve.symlink_to(precious)
    else:
        os.mkfifo(reserve)
    (tmp_path / "fail").unlink()
    # On e7cd270 the link's file was truncated and filled with 1 MiB of zeros; the
    # FIFO made the resume wait for good.
    out = run_cli(
        "run", str(tmp_path / "fails.py"), "--resume", job.name, "--workers", "0", timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert precious.read_text() == "years of work\n"
    assert not reserve.is_symlink() and not reserve.exists()  # dropped at the end
    assert run_cli("status", job.name).stdout.startswith("SUCCEEDED")


def test_a_resume_whose_log_is_a_fifo_says_so_and_never_hangs(tmp_path: Path) -> None:
    job = _failed_job(tmp_path)
    log = job / "logs" / "rank-0.out"
    log.unlink()
    os.mkfifo(log)
    (tmp_path / "fail").unlink()
    # On e7cd270 the resume waited for good, opening the FIFO to append to it.
    out = run_cli(
        "run", str(tmp_path / "fails.py"), "--resume", job.name, "--workers", "0", timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot write the job's log {log}: not a regular file" in out.stderr, out.stderr
    log.unlink()  # moved away, as the error says: the resume runs
    out = run_cli(
        "run", str(tmp_path / "fails.py"), "--resume", job.name, "--workers", "0", timeout=60
    )
    assert out.returncode == 0, out.stderr


#: A writer of a job's status.json, as each of several `qshpc status` of a dead job is.
MARKS = """
import sys
from pathlib import Path
from qshpc.jobs.paths import mark_terminal, read_override
job = Path(sys.argv[1])
for i in range(300):
    mark_terminal(job, "FAILED", f"writer {sys.argv[2]} mark {i} " + "x" * 3000)
    assert read_override(job) is not None, "a torn status.json"
print("done", flush=True)
"""


def test_concurrent_writers_of_status_json_each_write_it_whole(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MARKS, str(job), str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    # On e7cd270 they shared one temporary file, .status.json.tmp: a writer's rename
    # found it gone (FileNotFoundError) or renamed another's half-written file.
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "done", err[-2000:]
    assert [f.name for f in job.iterdir()] == ["status.json"]  # no temporary file left


SMALL_FILES = [
    "status.json",
    "slurm_state.json",
    "job.lock.holder",
    "logs/rank-0.out",
    "logs/dispatch.log",
    ".status.json.tmp",
]


def test_status_of_a_dead_job_whose_small_files_are_fifos(qshpc_home: Path) -> None:
    job = _killed_job(qshpc_home, "20261204-120000-abcdef", records=20)
    (job / "logs").mkdir(exist_ok=True)
    for name in SMALL_FILES:
        (job / name).unlink(missing_ok=True)
        os.mkfifo(job / name)
    # On e7cd270 `qshpc status` waited for good, reading the rank's log (the post-mortem).
    out = run_cli("status", job.name, timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith("FAILED") and "20 done" in out.stdout, out.stdout


def test_rm_of_an_array_element_whose_manifest_is_a_fifo(tmp_path: Path) -> None:
    job = _failed_job(tmp_path)
    element = job.with_name("20261204-120000-abcdef-0")
    job.rename(element)
    folder = tmp_path / "qshpc-home" / "arrays" / "20261204-120000-abcdef"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "array.json")
    # On e7cd270 `qshpc rm` waited for good, reading the manifest to see if the array's
    # folder could go with its last element.
    out = run_cli("rm", element.name, timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert not element.exists() and folder.is_dir()  # what it cannot read, it leaves


def _submitted_failed_job(home: Path, name: str) -> Path:
    """A job as `qshpc submit` leaves it once its Slurm job FAILED (its program staged)."""
    from qshpc.store import JobWriter
    from qshpc.store.jobfile import create_job
    from qshpc.submit.resources import SlurmResources

    job = home / "jobs" / name
    staged = job / "program"
    meta = {
        "id": name,
        "created": time.time(),
        "scheduler": "slurm",
        "slurm_resources": SlurmResources.build({"nodes": 1}).as_meta(),
        "entrypoint": str(staged / "prog.py"),
    }
    create_job(job, meta, {})
    staged.mkdir(mode=0o750)
    (staged / "prog.py").write_text("print('hello')\n")
    with JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": time.time()}) as w:
        w.finalize("FAILED", "boom")
    return job


def test_staging_leaves_nobody_else_write_access(tmp_path: Path) -> None:
    from qshpc.submit.staging import stage

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "prog.py").write_text("print(1)\n")
    for p in (src, src / "pkg", src / "prog.py"):
        p.chmod(0o775 if p.is_dir() else 0o664)  # as a umask of 002 leaves them
    stage(src, tmp_path / "staged")
    for p in (tmp_path / "staged", tmp_path / "staged" / "pkg", tmp_path / "staged" / "prog.py"):
        assert not p.stat().st_mode & 0o022, oct(p.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user (needs root)")
def test_submit_resume_refuses_another_members_staged_program(
    qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_SHARE_GROUP", "1")
    mine = _submitted_failed_job(qshpc_home, "20261204-120000-aaaaaa")
    out = run_cli("submit", "--resume", mine.name, "--dry-run")
    assert out.returncode == 0 and "#SBATCH" in out.stdout, out.stderr  # one's own: resumed
    theirs = _submitted_failed_job(qshpc_home, "20261204-120000-bbbbbb")
    for path in [theirs, *theirs.rglob("*")]:
        os.lchown(path, 4242, os.getegid())  # another member of the team made it
    # On e7cd270 it was accepted: their program would have run as this user.
    for argv in (["--dry-run"], []):
        out = run_cli("submit", "--resume", theirs.name, *argv)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "could have been written by another user (it belongs to uid 4242" in out.stderr
    # Theirs is refused even when only one file of the staged folder is another's.
    os.lchown(mine / "program" / "prog.py", 4242, os.getegid())
    out = run_cli("submit", "--resume", mine.name, "--dry-run")
    assert out.returncode == 2 and "prog.py could have been written" in out.stderr, out.stderr
    os.lchown(mine / "program" / "prog.py", os.geteuid(), os.getegid())
    (mine / "program" / "prog.py").chmod(0o664)  # a group-writable file: anyone of it
    out = run_cli("submit", "--resume", mine.name, "--dry-run")
    assert out.returncode == 2 and "others can write it (mode 0664; if it is yours" in out.stderr, (
        out.stderr
    )
    # In a private store nobody else can enter the job folder (0700): one's own 0664 is fine.
    out = run_cli("submit", "--resume", mine.name, "--dry-run", env={"QSHPC_SHARE_GROUP": "0"})
    assert out.returncode == 0, out.stderr


CACHED = """\
from qshpc import distribute_task, get, save_result

@distribute_task(cache=True)
def sq(x):
    return x * x

save_result(get([sq(i) for i in range(6)]))
"""


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/??/*") if len(p.name) == 64)


def test_a_folder_in_place_of_a_cache_entry_costs_that_entry_only(tmp_path: Path) -> None:
    prog = tmp_path / "cached.py"
    prog.write_text(CACHED)
    cache = tmp_path / "cache"
    argv = ("run", str(prog), "--workers", "0", "--cache", "--cache-dir", str(cache))
    assert run_cli(*argv).returncode == 0
    entries = _entries(cache)
    assert len(entries) == 6
    folder_at, folder_too = entries[0], entries[1]
    for e in (folder_at, folder_too):
        e.unlink()
        e.mkdir()
        (e / "x").write_text("not an entry")
    entries[2].unlink()  # computed again, and written again
    # On e7cd270 the write over the folder failed and the job cached nothing more
    # ("results are not cached for the rest of this job").
    out = run_cli(*argv)
    assert out.returncode == 0 and "not cached" not in out.stderr, out.stderr
    assert entries[2].is_file()
    # rm by key, and gc --verify, remove such folders (rm said "Is a directory").
    out = run_cli("cache", "rm", folder_at.name[:12], "--cache-dir", str(cache))
    assert out.returncode == 0 and "removed 1 entry" in out.stdout, out.stdout + out.stderr
    out = run_cli("cache", "gc", "--verify", "--cache-dir", str(cache))
    assert out.returncode == 0 and "1 damaged" in out.stdout, out.stdout + out.stderr
    assert not folder_at.exists() and not folder_too.exists()
    assert len(_entries(cache)) == 4


def test_concurrent_cache_gc_count_each_entry_once(tmp_path: Path) -> None:
    import json

    from qshpc.cache.store import CacheDir

    cache = CacheDir(tmp_path / "cache")
    n = 1500
    for i in range(n):
        cache.put_value(f"{i:064x}"[::-1], i, "m.f")
    argv = ["cache", "gc", "--older-than", "0s", "--json", "--cache-dir", str(cache.root)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "qshpc", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    # On e7cd270 an entry another gc removed first was counted by both: together they
    # said they removed up to three times what the cache held.
    removed = [json.loads(out)["removed"] for out, _ in outs]
    assert sum(removed) == n, removed
    assert not _entries(cache.root)


#: A program that saves its state on Slurm's warning signal (``--signal=USR1@60``).
WARNED = """\
import signal, time
from pathlib import Path
from qshpc import save_result

here = Path(__file__).parent
def warned(signum, frame):
    (here / "warned").write_text(f"rank 0 got {signal.Signals(signum).name}")
signal.signal(signal.SIGUSR1, warned)
(here / "started").touch()
deadline = time.monotonic() + 30
while not (here / "warned").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
save_result((here / "warned").exists())
"""


def test_sigusr1_to_qshpc_run_reaches_rank_0(tmp_path: Path) -> None:
    prog = tmp_path / "warned.py"
    prog.write_text(WARNED)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        # Slurm's warning before the time limit, as `#SBATCH --signal=USR1@60` sends it to
        # the job's processes (here: `qshpc run`, the local launcher).
        proc.send_signal(signal.SIGUSR1)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # On e7cd270 it killed `qshpc run` (SIGUSR1's default action), and rank 0 never saw it.
    assert proc.returncode == 0, err
    assert (tmp_path / "warned").read_text() == "rank 0 got SIGUSR1"


#: A program that handles SIGTERM itself, and goes on.
STUBBORN = """\
import signal, time
from pathlib import Path
from qshpc import distribute_task, get

@distribute_task()
def one(x):
    return x

get(one(1))  # a task stored before the cancel
signal.signal(signal.SIGTERM, lambda signum, frame: None)
(Path(__file__).parent / "started").touch()
time.sleep(120)
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_cancel_of_a_program_that_handles_sigterm_kills_it_after_the_grace(
    tmp_path: Path, workers: str
) -> None:
    prog = tmp_path / "stubborn.py"
    prog.write_text(STUBBORN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
        t0 = time.monotonic()
        out = run_cli("cancel", job.name, "--grace", "2", timeout=60)
        # On e7cd270 it said "cancel requested" and the program ran on (120 s here).
        assert out.returncode == 0, out.stderr
        assert "cancel requested" in out.stdout
        assert "handles SIGTERM itself), so rank 0 (pid" in out.stdout, out.stdout
        proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 30
    finally:
        proc.kill()
    assert proc.returncode != 0  # `qshpc run` of a cancelled job
    status = run_cli("status", job.name)
    assert status.stdout.startswith("CANCELED"), status.stdout
    assert "1 done" in status.stdout, status.stdout


def test_a_launcher_log_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    """LocalClient writes its launcher's output to ``logs/launcher.out`` (an array's driver to
    ``driver.out``): a FIFO put there is refused with the path named; it was opened blocking."""
    from qshpc.client.local import _launch
    from qshpc.errors import UserError

    job = tmp_path / "job"
    (job / "logs").mkdir(parents=True)
    os.mkfifo(job / "logs" / "launcher.out")
    (tmp_path / "p.py").write_text("print('never')\n")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"cannot write the log .*launcher\.out: not a regular"):
        _launch(str(tmp_path / "p.py"), str(tmp_path), {}, job, 0)
    assert time.monotonic() - started < 30
