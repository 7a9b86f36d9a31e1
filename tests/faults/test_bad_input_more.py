"""More bad input, found by trying to break qshpc as a careless or hostile user would (issue 17).

Rows of docs/bad-input.md marked ``more::NAME``. Each is a clear one-line error
(exit 2 for the user's mistake, 1 for a job that ran and FAILED), no hang, and
nothing committed lost. Unless a test says otherwise, each failed (a
traceback, a hang, or a silent wrong answer) on the main of 2026-12-01.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import h5py
import pytest

from tests.conftest import job_dir_of, run_cli
from tests.faults.test_bad_input import finished_job, no_internals, write

OK = "from qshpc import save_result\nsave_result(1)\n"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    no_internals(stderr)
    return lines[0]


def no_job(home: Path) -> None:
    jobs = home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir()), list(jobs.iterdir())


def zero_heap(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"GCOL") + 16
    data[at : at + 4096] = bytes(len(data[at : at + 4096]))
    path.write_bytes(bytes(data))


# -- arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "says"), [(1000, "deeper than Python"), (150, "100 levels")])
def test_deeply_nested_json_arguments(
    tmp_path: Path, qshpc_home: Path, depth: int, says: str
) -> None:
    """The issue's case: a traceback, and an empty job folder left behind."""
    args = tmp_path / "deep.json"
    args.write_text('{"x": ' + "[" * depth + "]" * depth + "}")
    out = run_cli(
        "run", str(write(tmp_path, "p.py", OK)), "--workers", "0", "--arguments", str(args)
    )
    assert out.returncode == 2 and says in one_line(out.stderr)
    no_job(qshpc_home)


def test_arguments_that_hold_themselves_or_explode(tmp_path: Path, qshpc_home: Path) -> None:
    """A list inside itself, and a list of itself twice, 60 times over (2**60 items to write)."""
    from qshpc import LocalClient, Program
    from qshpc.errors import SerializationError

    write(tmp_path, "p.py", OK)
    program = Program(title="t", entrypoint="p.py", working_dir=str(tmp_path))
    loop: list[object] = []
    loop.append(loop)
    bomb: list[object] = [1]
    for _ in range(60):
        bomb = [bomb, bomb]
    t0 = time.monotonic()
    for args, says in (({"a": loop}, "contain themselves"), ({"b": bomb}, "10,000,000")):
        with pytest.raises(SerializationError, match=says):
            LocalClient(workers=0).run(program, arguments=args)
    assert time.monotonic() - t0 < 30  # refused at once, not written for ever
    no_job(qshpc_home)


def test_arguments_file_is_a_fifo(tmp_path: Path, qshpc_home: Path) -> None:
    fifo = tmp_path / "args.json"
    os.mkfifo(fifo)
    out = run_cli(
        "run",
        str(write(tmp_path, "p.py", OK)),
        "--workers",
        "0",
        "--arguments",
        str(fifo),
        timeout=60,
    )
    assert out.returncode == 2 and "not a regular file" in one_line(out.stderr)
    no_job(qshpc_home)


def test_damaged_arguments_file(tmp_path: Path, qshpc_home: Path) -> None:
    """A sealed arguments file with damaged bytes, and one of an older qshpc (no seal) that hangs HDF5."""
    from qshpc.store import layout as L
    from qshpc.store import save_arguments
    from qshpc.store.jobfile import _write_arguments

    sealed = tmp_path / "a.h5"
    save_arguments(sealed, {"name": "x" * 100, "values": [1.5, 2.5]})
    zero_heap(sealed)
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as f:  # what save_arguments wrote before the seal
        L.stamp(f, "qshpc-arguments")
        _write_arguments(f, {"name": "x" * 100})
    zero_heap(old)
    prog = write(tmp_path, "p.py", OK)
    env = {"QSHPC_READ_TIMEOUT_S": "2"}
    for path, says in ((sealed, "integrity seal"), (old, "did not finish within 2 s")):
        out = run_cli(
            "run", str(prog), "--workers", "0", "--arguments", str(path), env=env, timeout=90
        )
        assert out.returncode == 2, out.stderr
        line = one_line(out.stderr)
        assert f"cannot load arguments from {path}: it is damaged" in line and says in line
    no_job(qshpc_home)


# -- results -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("import threading\nsave_result(threading.Lock())", "pickle failed"),
        ("d = 1\nfor _ in range(2000):\n    d = [d]\nsave_result(d)", "more than 100 levels"),
        ("a = []\na.append(a)\nsave_result(a)", "holds itself"),
    ],
    ids=["unpicklable", "nested-2000", "holds-itself"],
)
def test_result_that_cannot_be_stored(
    tmp_path: Path, qshpc_home: Path, code: str, says: str
) -> None:
    prog = write(tmp_path, "r.py", "from qshpc import save_result\n" + code + "\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1 and says in out.stderr
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["state"] == "FAILED" and says in meta["error"]


@pytest.mark.mpi
def test_task_returning_a_list_that_holds_itself(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(
        tmp_path, "t.py",
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef f():\n    a = []\n    a.append(a)\n    return a\n"
        "save_result(get(f()))\n",
    )  # fmt: skip
    out = run_cli("run", str(prog), "--workers", "1", timeout=120)
    assert out.returncode == 1 and "holds itself" in out.stderr
    assert (
        "Traceback" not in run_cli("status", str(job_dir_of(qshpc_home))).stdout.split("error:")[0]
    )


# -- damaged jobs: what may still be done with them -------------------------------


@pytest.mark.mpi
def test_resume_and_rm_of_a_damaged_job(tmp_path: Path, qshpc_home: Path) -> None:
    good = finished_job(tmp_path, qshpc_home)
    bad = qshpc_home / "jobs" / "damaged"
    shutil.copytree(good, bad)
    zero_heap(bad / "job.h5")
    prog = tmp_path / "ok.py"
    for workers in ("0", "1"):
        out = run_cli("run", str(prog), "--resume", "damaged", "--workers", workers, timeout=90)
        assert out.returncode == 2, out.stderr
        assert "is damaged" in one_line(out.stderr)
    assert sorted(p.name for p in bad.iterdir()) == ["job.h5", "logs"]  # nothing was written
    refused = run_cli("rm", "damaged")
    assert refused.returncode == 2 and "pass --force" in one_line(refused.stderr)
    assert run_cli("rm", "damaged", "--force").returncode == 0 and not bad.exists()


@pytest.mark.parametrize("what", ["job.journal", "logs/rank-1.out"])
def test_store_files_replaced_by_fifos_never_block(
    tmp_path: Path, qshpc_home: Path, what: str
) -> None:
    job = finished_job(tmp_path, qshpc_home)
    os.mkfifo(job / what)
    if what == "job.journal":
        out = run_cli("status", str(job), timeout=30)
        assert out.returncode == 2 and "not a regular file" in one_line(out.stderr)
    else:
        out = run_cli("logs", str(job), timeout=30)
        assert (
            out.returncode == 0
            and "(not shown:" in out.stdout
            and "not a regular file" in out.stdout
        )


def test_log_with_bytes_that_are_not_utf8(tmp_path: Path, qshpc_home: Path) -> None:
    job = finished_job(tmp_path, qshpc_home)
    with open(job / "logs" / "rank-0.out", "ab") as fh:
        fh.write(b"bad \xff\xfe bytes\n")
    out = run_cli("logs", str(job))
    assert out.returncode == 0 and "bad \\xff\\xfe bytes" in out.stdout


def test_lock_file_that_names_no_run(tmp_path: Path, qshpc_home: Path) -> None:
    """``touch job.lock`` (or a copy of one): refused while fresh, taken over once old."""
    from tests.conftest import FAIL, FAIL_AT_END

    prog = write(tmp_path, "ok.py", "from qshpc import save_result\nsave_result(1)\n" + FAIL_AT_END)
    assert run_cli("run", str(prog), "--workers", "0", env=FAIL).returncode == 1  # to resume
    job = job_dir_of(qshpc_home)
    (job / "job.lock").touch()
    out = run_cli("run", str(prog), "--resume", job.name, "--workers", "0")
    assert out.returncode == 2 and "names no run" in one_line(out.stderr)
    old = time.time() - 120
    os.utime(job / "job.lock", (old, old))
    again = run_cli("run", str(prog), "--resume", job.name, "--workers", "0")
    assert again.returncode == 0, again.stderr
    assert not (job / "job.lock").exists()


# -- options -----------------------------------------------------------------------


def test_job_dir_that_is_a_file_or_inside_a_job(tmp_path: Path, qshpc_home: Path) -> None:
    job = finished_job(tmp_path, qshpc_home)
    a_file = write(tmp_path, "a-file", "x")
    prog = tmp_path / "ok.py"
    for target, says in (
        (a_file, "is a file"),
        (job / "logs" / "sub", "is inside the folder of job"),
    ):
        out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(target))
        assert out.returncode == 2 and says in one_line(out.stderr), out.stderr
    assert a_file.read_text() == "x" and not (job / "logs" / "sub").exists()


def test_home_that_is_a_file(tmp_path: Path) -> None:
    home = write(tmp_path, "home", "not a folder")
    for cmd in (["list"], ["run", str(write(tmp_path, "p.py", OK)), "--workers", "0"]):
        out = run_cli(*cmd, env={"QSHPC_HOME": str(home)})
        assert out.returncode == 2 and "is not a directory" in one_line(out.stderr)


@pytest.mark.mpi
def test_seed_beyond_64_bits_gives_the_same_seeds_on_any_rank_count(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """Works (it is not bad input): tasks get the same derived seeds with 0 and 1 workers."""
    prog = write(
        tmp_path, "s.py",
        "from qshpc import distribute_task, get, save_result\n"
        "from qshpc.task.context import current_task\n"
        "@distribute_task()\ndef f(i):\n    return current_task().seed\n"
        "save_result(get([f(i) for i in range(3)]))\n",
    )  # fmt: skip
    seeds = []
    for workers in ("0", "1"):
        out = run_cli("run", str(prog), "--workers", workers, "--seed", str(2**70 + 3))
        assert out.returncode == 0, out.stderr
        seeds.append(json.loads(run_cli("result", str(job_dir_of(qshpc_home)), "--json").stdout))
    assert seeds[0] == seeds[1] and all(0 <= s < 2**63 for s in seeds[0])


def test_program_that_closes_its_stdout_and_stderr(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(
        tmp_path,
        "c.py",
        "import os\nfrom qshpc import save_result\nos.close(1)\nos.close(2)\nsave_result(7)\n",
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 0
    assert run_cli("result", str(job_dir_of(qshpc_home)), "--json").stdout.strip() == "7"


def test_title_of_100k_characters(tmp_path: Path, qshpc_home: Path) -> None:
    out = run_cli(
        "run", str(write(tmp_path, "p.py", OK)), "--workers", "0", "--title", "T" * 100_000
    )
    assert out.returncode == 0
    listing = run_cli("list")
    assert listing.returncode == 0 and max(map(len, listing.stdout.splitlines())) < 200
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["title"] == "T" * 100_000  # stored whole, shown short


def test_job_h5_that_is_not_a_regular_file(tmp_path: Path, qshpc_home: Path) -> None:
    """A job.h5 that is a folder, a FIFO or a link to /dev/zero: a job that cannot be read
    (one line, exit 2; listed; rm --force removes it), never 'no job', never a hang."""
    good = finished_job(tmp_path, qshpc_home)
    broken = {}
    for kind in ("folder", "fifo", "zero"):
        job = good.parent / f"20990101-000000-{kind}"
        shutil.copytree(good, job)
        (job / "job.h5").unlink()
        if kind == "folder":
            (job / "job.h5").mkdir()
        elif kind == "fifo":
            os.mkfifo(job / "job.h5")
        else:
            (job / "job.h5").symlink_to("/dev/zero")
        broken[kind] = job
    listed = run_cli("list", timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert good.name in listed.stdout and "SUCCEEDED" in listed.stdout
    for kind, job in broken.items():
        assert job.name in listed.stdout, kind
        out = run_cli("status", job.name, timeout=30)
        assert out.returncode == 2 and "not a regular file" in one_line(out.stderr), out.stderr
        no_internals(out.stderr)
    out = run_cli("rm", broken["zero"].name, "--force", timeout=30)
    assert out.returncode == 0 and not broken["zero"].exists(), out.stderr
