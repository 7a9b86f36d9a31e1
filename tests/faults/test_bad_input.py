"""Bad input, one test per row of docs/bad-input.md.

Each case: a message that names the input and says what to do, exit code 2
from the CLI (1 when the job itself ran and ended FAILED), no traceback of
qshpc's internals, and nothing already computed lost. Rows already covered
elsewhere are referenced in docs/bad-input.md, not repeated here.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

OK = """
from qshpc import distribute_task, get, save_result

@distribute_task()
def double(x):
    return 2 * x

save_result({"v": get([double(i) for i in range(4)])})
"""


def no_internals(text: str) -> None:
    """No traceback frames from qshpc's own code (nor typer's)."""
    assert "/qshpc/" not in text and "typer" not in text and "h5py" not in text, text


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def no_job(home: Path) -> None:
    jobs = home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir()), "a refused run must leave no job"


_FINISHED: list[Path] = []  # the QSHPC_HOME of the session's one run of OK


def finished_job(tmp_path: Path, home: Path) -> Path:
    """A job of OK that SUCCEEDED (result ``{"v": [0, 2, 4, 6]}``) in ``home``, OK at
    ``tmp_path/ok.py``. OK runs once per session (``qshpc run --workers 0``, ~2.5 s each
    for the 17 tests that ask); each test gets a copy of that run's QSHPC_HOME (its
    folders and files with their modes), as it would have left it here."""
    write(tmp_path, "ok.py", OK)
    if not _FINISHED:
        made = Path(tempfile.mkdtemp(prefix="qshpc-finished-job-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        out = run_cli(
            "run",
            str(write(made, "ok.py", OK)),
            "--workers",
            "0",
            env={"QSHPC_HOME": str(made / "home")},
        )
        assert out.returncode == 0, out.stderr
        _FINISHED.append(made / "home")
    shutil.copytree(_FINISHED[0], home, symlinks=True, dirs_exist_ok=True)
    return job_dir_of(home)


# -- the program file ------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "1", None])
def test_program_is_a_fifo(tmp_path: Path, qshpc_home: Path, workers: str | None) -> None:
    """An unreadable program (we run as root, so chmod 000 does not stop reads: a FIFO would block).
    review35 F3: with workers (the default) the fork server's look at the program's imports
    opened it first, and `qshpc run FIFO` hung for good, deaf to Ctrl-C and SIGTERM."""
    fifo = tmp_path / "prog.py"
    os.mkfifo(fifo)
    extra = ["--workers", workers] if workers is not None else []
    out = run_cli("run", str(fifo), *extra, timeout=60)
    assert out.returncode == 2 and "not a regular file" in out.stderr and "prog.py" in out.stderr
    no_internals(out.stderr)
    no_job(qshpc_home)


def test_program_is_a_device(tmp_path: Path, qshpc_home: Path) -> None:
    """review35 F3: `qshpc run /dev/zero` grew to 9 GB in 49 s, reading it for its imports."""
    out = run_cli("run", "/dev/zero", "--workers", "1", timeout=60)
    assert out.returncode == 2 and "not a regular file" in out.stderr, out.stderr
    no_internals(out.stderr)
    no_job(qshpc_home)


def test_program_of_nul_bytes(tmp_path: Path, qshpc_home: Path) -> None:
    """review35 F9: `truncate -s 1G big.py` was "a syntax error at line None"."""
    prog = tmp_path / "big.py"
    prog.write_bytes(b"x = 1\n" + bytes(1 << 20))
    out = run_cli("run", str(prog), "--workers", "1", timeout=60)
    assert out.returncode == 2 and "holds NUL bytes: it is not Python source" in out.stderr
    no_internals(out.stderr)
    no_job(qshpc_home)


def test_program_is_a_directory(tmp_path: Path, qshpc_home: Path) -> None:
    out = run_cli("run", str(tmp_path), "--workers", "0")
    assert (
        out.returncode == 2 and "is a directory" in out.stderr and "give the .py file" in out.stderr
    )
    no_job(qshpc_home)


def test_program_path_through_a_file(tmp_path: Path, qshpc_home: Path) -> None:
    """``file.py/x.py``: the OS says ENOTDIR; qshpc says it does not exist."""
    f = write(tmp_path, "file.py", "x = 1\n")
    out = run_cli("run", str(f / "x.py"), "--workers", "0")
    assert out.returncode == 2 and "does not exist" in out.stderr
    no_job(qshpc_home)


def test_program_never_saves_a_result(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(tmp_path, "quiet.py", "print('working')\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 0 and "never called save_result" in out.stdout
    res = run_cli("result", str(job_dir_of(qshpc_home)))
    assert res.returncode == 0 and res.stdout.strip() == "None"
    assert "SUCCEEDED but the program never called save_result" in res.stderr


def test_save_result_twice_later_wins(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(
        tmp_path, "twice.py", "from qshpc import save_result\nsave_result(1)\nsave_result(2)\n"
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 0
    assert "save_result was called again: the later result replaces the earlier one" in out.stderr
    assert run_cli("result", str(job_dir_of(qshpc_home)), "--json").stdout.strip() == "2"


@pytest.mark.parametrize(("code", "state", "rc"), [(3, "FAILED", 1), (0, "SUCCEEDED", 0)])
def test_program_calls_sys_exit(
    tmp_path: Path, qshpc_home: Path, code: int, state: str, rc: int
) -> None:
    prog = write(tmp_path, "exits.py", f"import sys\nprint('bye')\nsys.exit({code})\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == rc
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["state"] == state
    if code:
        assert meta["error"] == "the program called sys.exit(3)"
        assert "sys.exit(3)" in out.stderr


def test_non_utf8_program_path(tmp_path: Path, qshpc_home: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/prog\xff.py"
    with open(raw, "w") as f:
        f.write("from qshpc import save_result\nsave_result(1)\n")
    for cmd in (["run", "--workers", "0"], ["submit", "--dry-run"]):
        out = subprocess.run(
            [sys.executable, "-m", "qshpc", cmd[0], raw, *cmd[1:]], capture_output=True, timeout=60
        )
        err = out.stderr.decode()
        assert out.returncode == 2, err
        assert "is not valid UTF-8" in err and "prog\\xff.py" in err and "rename it" in err
        no_internals(err)
    no_job(qshpc_home)


def test_non_utf8_job_dir(tmp_path: Path) -> None:
    prog = write(tmp_path, "ok.py", OK)
    raw = os.fsencode(tmp_path) + b"/job\xff"
    out = subprocess.run(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0", "--job-dir", raw],
        capture_output=True,
        timeout=60,
    )
    assert (
        out.returncode == 2 and b"job directory" in out.stderr and b"not valid UTF-8" in out.stderr
    )
    assert not os.path.exists(raw)


@pytest.mark.mpi
def test_spaces_and_unicode_in_paths(tmp_path: Path) -> None:
    folder = tmp_path / "my programs ü ñ 程序"
    prog = write(
        folder,
        "the program ✓.py",
        OK.replace("range(4)", "range(get_arguments()['n'])").replace(
            "from qshpc import", "from qshpc import get_arguments,"
        ),
    )
    args = write(folder, "args file ✓.json", json.dumps({"n": 5}))
    job = tmp_path / "job dir ジョブ"
    out = run_cli(
        "run", str(prog), "--arguments", str(args), "--job-dir", str(job), "--workers", "1"
    )
    assert out.returncode == 0, out.stderr
    res = run_cli("result", str(job), "--json")
    assert json.loads(res.stdout) == {"v": [0, 2, 4, 6, 8]}
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["entrypoint"] == str(prog.resolve())


# -- the arguments file ------------------------------------------------------------


def test_arguments_is_a_directory(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(tmp_path, "ok.py", OK)
    for cmd in (["run", str(prog), "--workers", "0"], ["submit", str(prog), "--dry-run"]):
        out = run_cli(*cmd, "--arguments", str(tmp_path))
        assert out.returncode == 2, out.stderr
        assert f"arguments file {tmp_path} is a directory" in out.stderr and ".json" in out.stderr
    no_job(qshpc_home)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("args.json", b'"just a string"', "must be a dict"),
        ("args.json", b"42", "must be a dict"),
        ("args.json", b"", "not valid JSON"),
        ("args.txt", b"circuits = 1", "not an HDF5 (.h5) or JSON (.json) file"),
    ],
)
def test_arguments_wrong_type(
    tmp_path: Path, qshpc_home: Path, name: str, content: bytes, needle: str
) -> None:
    """More shapes than tests/mpi/test_errors.py::test_bad_arguments_file (corrupt JSON, a list, bad HDF5)."""
    args = tmp_path / name
    args.write_bytes(content)
    out = run_cli(
        "run", str(write(tmp_path, "ok.py", OK)), "--arguments", str(args), "--workers", "0"
    )
    assert out.returncode == 2, out.stderr
    assert name in out.stderr and needle in out.stderr, out.stderr
    no_internals(out.stderr)
    no_job(qshpc_home)


def test_arguments_hdf5_not_from_save_arguments(tmp_path: Path, qshpc_home: Path) -> None:
    import h5py

    args = tmp_path / "foreign.h5"
    with h5py.File(args, "w") as f:
        f["x"] = [1, 2, 3]
    out = run_cli(
        "run", str(write(tmp_path, "ok.py", OK)), "--arguments", str(args), "--workers", "0"
    )
    assert out.returncode == 2 and "foreign.h5" in out.stderr and "not a qshpc store" in out.stderr
    no_job(qshpc_home)


# -- what the program asks for ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "needle"),
    [("{'cpu': -1}", "cpu=-1 must be >= 1"), ("{'gpu': -2}", "gpu=-2"), ("{'mem': -5}", "mem")],
)
def test_negative_task_target(tmp_path: Path, qshpc_home: Path, target: str, needle: str) -> None:
    prog = write(
        tmp_path,
        "neg.py",
        f"from qshpc import distribute_task\n@distribute_task(target={target})\ndef f(x):\n    return x\n",
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1, out.stderr  # the job ran and ended FAILED
    assert needle in out.stderr and "Valid keys: cpu" in out.stderr
    no_internals(out.stderr)


@pytest.mark.mpi
def test_unserializable_argument(tmp_path: Path, qshpc_home: Path) -> None:
    prog = write(
        tmp_path,
        "lockarg.py",
        "import threading\nfrom qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef f(x):\n    return 1\n"
        "ok = get([f(i) for i in range(3)])\n"
        "save_result(get(f(threading.Lock())))\n",
    )
    out = run_cli("run", str(prog), "--workers", "1")
    assert out.returncode == 1
    assert "the arguments of task 3 (f) cannot be serialized" in out.stderr
    assert "build the object inside the task" in out.stderr
    no_internals(out.stderr)
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["task_counts"]["SUCCEEDED"] == 3  # what finished is kept


def test_unserializable_job_arguments(tmp_path: Path, qshpc_home: Path) -> None:
    from qshpc import LocalClient, Program
    from qshpc.errors import SerializationError

    write(tmp_path, "ok.py", OK)
    program = Program(title="t", entrypoint="ok.py", working_dir=str(tmp_path))
    with pytest.raises(SerializationError):
        LocalClient(workers=0).run(program, arguments={"lock": threading.Lock()})


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("get(5)", "get takes a task reference or a list of them, got int"),
        ("get([f(1), 'x'])", "get takes task references, got str in the list"),
        ("wait([f(1)], num_returns=0)", "num_returns must be between 1 and 1, got 0"),
    ],
)
def test_program_api_misuse(tmp_path: Path, qshpc_home: Path, code: str, needle: str) -> None:
    prog = write(
        tmp_path,
        "misuse.py",
        "from qshpc import distribute_task, get, wait\n"
        "@distribute_task()\ndef f(x):\n    return x\n"
        f"done = get([f(i) for i in range(3)])\n{code}\n",
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1
    assert needle in out.stderr and "misuse.py" in out.stderr
    no_internals(out.stderr)  # the program's line, then the message
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["state"] == "FAILED" and meta["task_counts"]["SUCCEEDED"] >= 3


@pytest.mark.mpi
@pytest.mark.slow
def test_huge_return_over_1_gib(tmp_path: Path, qshpc_home: Path) -> None:
    """A 1.1 GiB numpy array crosses MPI and is stored; memory peaks near 4x its size on rank 0."""
    prog = write(
        tmp_path,
        "huge.py",
        "import numpy as np\nfrom qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef big(n):\n    return np.ones(n, dtype=np.uint8)\n"
        "a = get(big(1_100 * 2**20 + 7))\n"
        "save_result({'n': int(a.size), 'sum': int(a.sum(dtype=np.int64))})\n",
    )
    out = run_cli("run", str(prog), "--workers", "1", timeout=600)
    assert out.returncode == 0, out.stderr
    n = 1_100 * 2**20 + 7
    assert json.loads(run_cli("result", str(job_dir_of(qshpc_home)), "--json").stdout) == {
        "n": n,
        "sum": n,
    }
    from qshpc.store import JobReader

    with JobReader.open(job_dir_of(qshpc_home)) as r:
        value = r.task_result("0")
    assert value.shape == (n,) and int(value[-1]) == 1


# -- options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "-1"], "--workers must be >= 0, got -1"),
        (["--workers", "two"], "Invalid value for '--workers'"),
        (["--seed", "abc"], "Invalid value for '--seed'"),
        (["--resume", "no-such-job"], "no job 'no-such-job'"),
    ],
)
def test_bad_run_options(tmp_path: Path, qshpc_home: Path, args: list[str], needle: str) -> None:
    out = run_cli("run", str(write(tmp_path, "ok.py", OK)), *args)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    no_internals(out.stderr)
    no_job(qshpc_home)


def test_job_dir_not_empty(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    write(target, "keep.txt", "mine")
    out = run_cli(
        "run", str(write(tmp_path, "ok.py", OK)), "--workers", "0", "--job-dir", str(target)
    )
    assert (
        out.returncode == 2
        and "exists and is not empty" in out.stderr
        and "--job-dir" in out.stderr
    )
    assert (target / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--nodes", "-3"], "nodes=-3"),
        (["--cpus-per-task", "0"], "cpus_per_task=0"),
        (["--gpus-per-node", "-1"], "gpus_per_node=-1"),
        (["--mem-gb", "-1"], "mem_gb=-1"),
        (["--time-min", "-5"], "time_min=-5"),
        (["--time-min", "abc"], "Invalid value for '--time-min'"),
        (["--time-min", "1:30"], "Invalid value for '--time-min'"),
        (["--ntasks-per-node", "0"], "ntasks_per_node=0"),
    ],
)
def test_submit_bad_resources_dry_run(
    tmp_path: Path, qshpc_home: Path, args: list[str], needle: str
) -> None:
    """Without a cluster (--dry-run); the real submit is tests/slurm/test_submit.py::test_bad_resources_refused."""
    out = run_cli("submit", str(write(tmp_path, "ok.py", OK)), "--dry-run", *args)
    assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert not out.stdout
    no_internals(out.stderr)
    no_job(qshpc_home)


# -- job ids and job directories ---------------------------------------------------


@pytest.mark.parametrize("command", ["rm", "plot"])
def test_unknown_job_more_commands(command: str) -> None:
    """status, result, logs, cancel, wait: tests/mpi/test_errors.py::test_status_of_unknown_job."""
    out = run_cli(command, "no-such-job")
    assert (
        out.returncode == 2 and "no job 'no-such-job'" in out.stderr and "qshpc list" in out.stderr
    )


def test_other_schema_version(tmp_path: Path, qshpc_home: Path) -> None:
    import h5py

    job = finished_job(tmp_path, qshpc_home)
    copy = tmp_path / "v99"
    shutil.copytree(job, copy)
    with h5py.File(copy / "job.h5", "r+") as f:
        f.attrs["qshpc-schema-version"] = 99
    for cmd in ("status", "result", "wait"):
        out = run_cli(cmd, str(copy))
        assert out.returncode == 2, (cmd, out.stderr)
        assert "schema version 99" in out.stderr and "upgrade qshpc" in out.stderr
        no_internals(out.stderr)
    # `qshpc wait`'s first look says so: it retried for 10 s (STORE_RETRY_S), as if a
    # writer were opening the store.
    from qshpc import open_job
    from qshpc.errors import SchemaVersionError
    from qshpc.jobs.progress import watch

    looks = []
    job_v99 = open_job(copy)
    info = job_v99.info

    def counted(*args: Any, **kw: Any) -> dict[str, Any]:
        looks.append(1)
        return info(*args, **kw)

    job_v99.info = counted  # type: ignore[method-assign]
    with pytest.raises(SchemaVersionError):
        watch(job_v99, stream=io.StringIO(), tty=False)
    assert len(looks) == 1, len(looks)
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {"v": [0, 2, 4, 6]}


def test_truncated_store(tmp_path: Path, qshpc_home: Path) -> None:
    job = finished_job(tmp_path, qshpc_home)
    copy = qshpc_home / "jobs" / "truncated"
    shutil.copytree(job, copy)
    size = (copy / "job.h5").stat().st_size
    os.truncate(copy / "job.h5", size // 2)
    for cmd in ("status", "result", "logs"):
        out = run_cli(cmd, str(copy))
        if cmd == "logs":  # the logs are files beside the store: still readable
            assert out.returncode == 0
            continue
        assert out.returncode == 2, (cmd, out.stderr)
        assert f"{copy / 'job.h5'} is damaged" in out.stderr and "cut short" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        no_internals(out.stderr)
    listing = run_cli("list")
    assert listing.returncode == 0 and "DAMAGED" in listing.stdout
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {"v": [0, 2, 4, 6]}


@pytest.mark.mpi
@pytest.mark.parametrize("workers", [0, 1])
def test_job_dir_removed_while_running(tmp_path: Path, qshpc_home: Path, workers: int) -> None:
    prog = write(
        tmp_path,
        "slowish.py",
        "import time\nfrom qshpc import distribute_task, get, save_result, update_status\n"
        "@distribute_task()\ndef f(x):\n    time.sleep(0.2)\n    return x\n"
        "out = []\nfor i in range(300):\n    out.append(get(f(i)))\n    update_status(f'{i}')\n"
        "save_result(out)\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = (
                list((qshpc_home / "jobs").glob("*/job.h5"))
                if (qshpc_home / "jobs").is_dir()
                else []
            )
            if jobs and run_cli("status", str(jobs[0].parent)).stdout.startswith("RUNNING: "):
                break
            time.sleep(0.2)
        job = job_dir_of(qshpc_home)
        shutil.rmtree(job)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    assert proc.returncode == 1, err
    assert f"its job directory {job} was removed while it ran" in err
    assert took < 15, f"took {took:.1f} s to notice"
    assert "/qshpc/" not in err


@pytest.mark.mpi
def test_result_and_rm_of_a_running_job(qshpc_home: Path) -> None:
    from qshpc import LocalClient, Program

    job = LocalClient(workers=1).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS))
    )
    try:
        deadline = time.monotonic() + 60
        while job.status() != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
        out = run_cli("result", job.job_id)
        assert out.returncode == 2 and "is RUNNING: it has no result yet" in out.stderr
        assert f"qshpc wait {job.job_id}" in out.stderr
        out = run_cli("rm", job.job_id)
        assert out.returncode == 2 and "cancel it first" in out.stderr and "--force" in out.stderr
        assert job.job_dir.is_dir() and job.status() == "RUNNING"
    finally:
        job.stop()
        job.wait(timeout=60)
