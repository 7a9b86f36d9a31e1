"""Session 11, lead: circuits whose metadata holds numpy values, stored and sent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, run_cli

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
    prog.write_text(NUMPY_METADATA)
    out = run_cli("run", str(prog), ranks=ranks, timeout=100)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = open_job(job_dir_of(qshpc_home)).result()
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
