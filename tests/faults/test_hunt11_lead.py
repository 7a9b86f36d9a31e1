"""Session 11, lead: circuits whose metadata holds numpy values, stored and sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import job_dir_of, run_cli, run_program

NUMPY_METADATA = """\
import numpy as np
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, save_result

@distribute_task()
def tagged(theta):
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    qc.metadata = {"theta": np.float64(theta), "n": np.int64(3), "grid": np.arange(3)}
    return qc

save_result({"circuits": get([tagged(t) for t in (0.1, 0.2)])})
"""


def test_numpy_metadata_is_written_as_plain_numbers() -> None:
    """On review11's merge (b7bc672..), QPY's JSON refused ``np.int64`` in a circuit's
    metadata: a task returning such a circuit failed, ``save_result`` of it failed. Numpy
    scalars and arrays are now written as the numbers and lists they hold."""
    from qiskit import QuantumCircuit

    from qshpc.store import _qpy

    qc = QuantumCircuit(1)
    qc.h(0)
    qc.metadata = {"n": np.int64(3), "a": np.arange(3), "f": np.float32(0.5)}
    back = _qpy.load(_qpy.dump([qc, qc]))
    assert back[0].metadata == {"n": 3, "a": [0, 1, 2], "f": 0.5}
    assert type(back[0].metadata["n"]) is int


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_a_task_returns_circuits_with_numpy_metadata(
    ranks: int, qshpc_home: Path, tmp_path: Path
) -> None:
    prog = tmp_path / "numpy_metadata.py"
    res = run_program(qshpc_home, prog, NUMPY_METADATA, ranks=ranks).result()
    assert [c.metadata["theta"] for c in res["circuits"]] == [0.1, 0.2]
    assert res["circuits"][1].metadata["grid"] == [0, 1, 2]


def test_resume_with_another_program_says_which_program_runs(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On 3986114 ``qshpc run other.py --resume JOB`` ran JOB's own program without a word
    (a job runs the program it was made for); rank 0 now says so. The job's own program
    named again gets no note."""
    failing = tmp_path / "failing.py"
    failing.write_text("raise RuntimeError('boom')\n")
    other = tmp_path / "other.py"
    other.write_text("from qshpc import save_result\nsave_result(1)\n")
    first = run_cli("run", str(failing), "--workers", "0", timeout=60)
    assert first.returncode == 1 and "qshpc: note:" not in first.stderr
    job = job_dir_of(qshpc_home)
    out = run_cli("run", str(other), "--resume", str(job), "--workers", "0", timeout=60)
    assert f"runs {failing.resolve()}, the program it was made for, not {other}" in out.stderr
    again = run_cli("run", str(failing), "--resume", str(job), "--workers", "0", timeout=60)
    assert "qshpc: note:" not in again.stderr


def test_a_placed_list_of_circuits_is_copied_per_use_not_loaded() -> None:
    """A placed object is thawed for each task and ``get`` (hunt11b, Ray's semantics); a
    list of circuits was loaded from its pickle each time (69 ms for 100 10-qubit
    circuits: 42x slower calls than before under ``mpiexec -n 3``). Such objects are now
    copied from the first load: each copy is independent, shares what the object shared,
    and its arrays stay read-only views."""
    from qiskit.circuit.random import random_circuit

    from qshpc.program.backend import Frozen, freeze

    circuits = [random_circuit(4, 4, seed=i) for i in range(30)]
    arr = np.arange(6.0)
    placed = {"circuits": circuits, "twice": [arr, arr], "n": np.int64(3), "t": (1, "a")}
    frozen = freeze(placed)
    assert isinstance(frozen, Frozen)
    first, second = frozen.thaw(), frozen.thaw()
    for got in (first, second):
        assert got["circuits"] == circuits and got["n"] == 3 and got["t"] == (1, "a")
        assert np.array_equal(got["twice"][1], arr)
    first["circuits"][0].h(0)
    first["circuits"].append(None)
    first["circuits"][1].metadata["x"] = 1
    third = frozen.thaw()
    assert third["circuits"] == circuits and len(third["circuits"]) == 30
    assert third["circuits"][1].metadata == circuits[1].metadata
    assert third["twice"][0] is third["twice"][1]
    assert not third["twice"][0].flags.writeable
    assert third["circuits"][0] is not second["circuits"][0]


PUT_CIRCUITS = """\
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, put, save_result

@distribute_task()
def grow(circuits, i):
    circuits[i % 3].x(0)  # in place: the next task must not see it
    return sum(len(c.data) for c in circuits)

ref = put([QuantumCircuit(1) for _ in range(3)])
save_result(get([grow(ref, i) for i in range(6)]))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_tasks_changing_placed_circuits_do_not_see_each_other(
    ranks: int, qshpc_home: Path, tmp_path: Path
) -> None:
    job = run_program(qshpc_home, tmp_path / "put_circuits.py", PUT_CIRCUITS, ranks=ranks)
    assert job.result() == [1] * 6
