"""Cold start: every process of a job imports only what its role uses (issue 19).

``QSHPC_TIMELINE=1`` makes each process write the third-party packages it had
loaded (``logs/timeline-*.json``). Timings are for ``benchmarks/coldstart.py``;
these tests check the imports, which decide most of a small job's start-up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qshpc import Job
from qshpc.store import create_job
from tests.conftest import ROOT, job_dir_of, run_cli

pytestmark = pytest.mark.mpi

TRIVIAL = (
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\ndef inc(x):\n    return x + 1\n"
    "save_result(get([inc(i) for i in range(4)]))\n"
)
ENVPROG = (
    "import os\nfrom qshpc import distribute_task, get, save_result\n"
    "NAMES = ('QSHPC_LAUNCH_END', 'QSHPC_LAUNCH_TOKEN')\n"
    "@distribute_task()\ndef env():\n    return [os.environ.get(n) for n in NAMES]\n"
    "save_result({'task': get(env()), 'rank0': [os.environ.get(n) for n in NAMES]})\n"
)
CLI = {"typer", "click", "pydantic", "pydantic_core", "rich"}


def timelines(job: Path) -> dict[str, set[str]]:
    out = {}
    for path in (job / "logs").glob("timeline-*.json"):
        data = json.loads(path.read_text())
        out[data["role"]] = set(data["modules"])
    return out


def test_a_program_without_qiskit_starts_without_it(tmp_path: Path, qshpc_home: Path) -> None:
    prog = tmp_path / "trivial.py"
    prog.write_text(TRIVIAL)
    (tmp_path / "tmp").mkdir()
    env = {"QSHPC_TIMELINE": "1", "QSHPC_PROGRESS_S": "0", "TMPDIR": str(tmp_path / "tmp")}
    out = run_cli("run", str(prog), "--workers", "2", env=env)
    assert out.returncode == 0, out.stderr
    seen = timelines(job_dir_of(qshpc_home))
    assert set(seen) == {"launcher", "rank-0", "rank-1", "rank-2"}, seen
    for who, modules in seen.items():
        assert not modules & CLI, (who, modules & CLI)  # every rank and the parent skip typer
        assert not modules & {"qiskit", "qiskit_aer"}, (who, modules)
    for worker in ("rank-1", "rank-2"):
        assert "h5py" not in seen[worker]  # workers never touch the store
    # rank 0's end note gives the launcher its exit code: it never opens the store
    assert "h5py" not in seen["launcher"], seen["launcher"]
    assert not list((tmp_path / "tmp").iterdir())  # and removes the note
    # A job created beforehand (LocalClient.run, qshpc submit): the launcher starts the
    # ranks without reading the store either (rank 0 refuses a job that already ran).
    made = tmp_path / "made"
    create_job(made, {"id": "made", "created": 1.0}, {})
    envprog = tmp_path / "envprog.py"
    envprog.write_text(ENVPROG)
    out = run_cli("run", str(envprog), "--workers", "1", "--job-dir", str(made), env=env)
    assert out.returncode == 0, out.stderr
    assert "h5py" not in timelines(made)["launcher"]
    # the launcher's token and note are rank 0's: neither the program nor a task sees them
    assert Job(made).result() == {"task": [None, None], "rank0": [None, None]}
    again = run_cli("run", str(envprog), "--workers", "1", "--job-dir", str(made), env=env)
    assert again.returncode == 2 and again.stderr.count("already ran (SUCCEEDED)") == 1, again


def test_a_client_run_writes_its_own_timeline(
    tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LocalClient.run``'s steps (the kernel's side of the start) beside the processes'."""
    from qshpc import LocalClient, Program

    (tmp_path / "trivial.py").write_text(TRIVIAL)
    monkeypatch.setenv("QSHPC_TIMELINE", "1")
    monkeypatch.setenv("QSHPC_PROGRESS_S", "0")
    program = Program(title="t", entrypoint="trivial.py", working_dir=str(tmp_path))
    job = LocalClient(workers=1).run(program)
    assert job.result() == [1, 2, 3, 4]
    job.wait()  # result() returns once the store is final; the launcher writes its timeline at its exit
    data = json.loads((job.job_dir / "logs" / "timeline-client.json").read_text())
    names = [name for name, _, _ in data["marks"]]
    assert names == ["run", "job planned", "launcher started", "job written"], names
    assert data["proc_start"] == data["marks"][0][1]  # from the call on, not the kernel's start
    assert set(timelines(job.job_dir)) == {"client", "launcher", "rank-0", "rank-1"}


def test_the_seed_program_loads_aer_on_workers_only(tmp_path: Path, qshpc_home: Path) -> None:
    shutil.copy(ROOT / "examples" / "program_4.py", tmp_path / "program_4.py")
    from qiskit import QuantumCircuit

    from qshpc import save_arguments

    circuits = []
    for i in range(4):
        qc = QuantumCircuit(2)
        qc.h(0)
        qc.cx(0, 1)
        qc.rz(0.1 * i, 1)
        qc.measure_all()
        circuits.append(qc)
    save_arguments(tmp_path / "args.h5", {"circuits": circuits})
    out = run_cli(
        "run", "program_4.py", "--arguments", "args.h5", ranks=3, cwd=tmp_path,
        env={"QSHPC_TIMELINE": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = timelines(job_dir_of(qshpc_home))
    assert set(seen) == {"rank-0", "rank-1", "rank-2"}, seen
    assert "qiskit" in seen["rank-0"] and "h5py" in seen["rank-0"]
    assert "qiskit_aer" not in seen["rank-0"]  # the program only needs Aer inside its tasks
    for worker in ("rank-1", "rank-2"):
        assert "qiskit_aer" in seen[worker] and "h5py" not in seen[worker], seen[worker]
    for who, modules in seen.items():
        assert not modules & CLI, (who, modules & CLI)


BLASPROG = (
    "import os\nfrom qshpc import distribute_task, get, save_result\n"
    "from qshpc.task.context import rank_info\n"
    "def mine():\n"
    "    import numpy  # noqa: F401\n"
    "    return (os.environ.get('OPENBLAS_NUM_THREADS'), str(rank_info().cpus))\n"
    "@distribute_task()\ndef task():\n    return mine()\n"
    "save_result({'tasks': get([task() for _ in range(4)]), 'rank0': mine()})\n"
)


def test_each_rank_gets_its_own_cores_as_blas_threads(tmp_path: Path, qshpc_home: Path) -> None:
    """numpy's OpenBLAS starts a thread per core of the machine, spinning, in every rank
    at once (50-100 ms of CPU a process on 2 cores): a rank gets its own cores, unless
    the user set a thread count."""
    from qshpc.runtime.blas import USER_VARS

    prog = tmp_path / "blas.py"
    prog.write_text(BLASPROG)
    unset = dict.fromkeys(USER_VARS, "")
    out = run_cli("run", str(prog), ranks=3, cwd=tmp_path, env=unset)
    assert out.returncode == 0, out.stderr
    result = Job(job_dir_of(qshpc_home)).result()
    for threads, cpus in [*result["tasks"], result["rank0"]]:
        assert threads == cpus, result
    out = run_cli("run", str(prog), ranks=3, cwd=tmp_path, env={**unset, "OMP_NUM_THREADS": "3"})
    assert out.returncode == 0, out.stderr
    result = Job(job_dir_of(qshpc_home)).result()
    assert {threads for threads, _ in [*result["tasks"], result["rank0"]]} == {""}, result


def test_notes_of_killed_launchers_are_swept(tmp_path: Path, qshpc_home: Path) -> None:
    """A launcher killed with SIGKILL cannot remove its end note; the next one removes the
    notes whose launcher is gone, and leaves running launchers' notes and other files."""
    import os
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp / f"qshpc-end-{int(gone.stdout)}-abc123"
    live = tmp / f"qshpc-end-{os.getpid()}-def456"
    other = tmp / "qshpc-end-notapid"
    for path in (stale, live, other):
        path.write_text("")
    prog = tmp_path / "trivial.py"
    prog.write_text(TRIVIAL)
    out = run_cli("run", str(prog), "--workers", "1", env={"TMPDIR": str(tmp)})
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp.iterdir()) == sorted([live.name, other.name])
