"""Session 11's review (review11) of the session's merges (8cc329b..a0ecc98).

Each test says what happened on main a0ecc98.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(120)]


def _circuit_with_metadata(value: object):  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(1)
    qc.h(0)
    qc.metadata = {"n": value}
    return qc


@pytest.mark.parametrize(
    "make",
    [
        lambda: [_circuit_with_metadata(np.int64(3))] * 2,  # QPY's JSON: TypeError
        lambda: _circuit_with_lock_parameter(),  # QPY: QpyError
    ],
    ids=["circuit-list-numpy-metadata", "circuit-lock-parameter"],
)
def test_a_circuit_that_qpy_refuses_is_a_serialization_error(make) -> None:  # type: ignore[no-untyped-def]
    """On a0ecc98 ``encode_blob_parts`` (documented: SerializationError) raised QPY's own
    errors for a list of circuits whose metadata JSON refuses (TypeError) and a circuit
    with an instruction parameter QPY cannot write (QpyError); the inline paths that
    hunt11a taught to fail the task catch SerializationError only, so such a return value
    still failed the whole job at the call there (see the program test below)."""
    from qshpc.errors import SerializationError
    from qshpc.store.encoding_blob import encode_blob_parts

    with pytest.raises(SerializationError, match="cannot encode a value of type"):
        encode_blob_parts(make())


def _circuit_with_lock_parameter():  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit
    from qiskit.circuit import Instruction

    qc = QuantumCircuit(1)
    qc.append(Instruction("g", 1, 0, [threading.Lock()]), [0])
    return qc


UNSTORABLE_CIRCUITS = """\
import numpy as np
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, save_result, TaskError

@distribute_task()
def circuits():
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.metadata = {"n": np.int64(3)}
    return [qc, qc]

@distribute_task()
def fine(i):
    return i

ref = circuits()
out = [get(fine(i)) for i in range(3)]
try:
    get(ref)
except TaskError as exc:
    out.append(str(exc).splitlines()[0])
save_result(out)
"""


@pytest.mark.mpi
def test_circuits_that_cannot_be_stored_fail_their_task_inline(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On a0ecc98, ``mpiexec -n 1``: a task returning a list of circuits whose metadata QPY
    cannot write (``np.int64``) raised ``TypeError: Object of type int64 is not JSON
    serializable`` at the call, naming no task, and the job FAILED (on a worker the task
    failed alone). Now it fails alone on one rank too, with the worker's message."""
    prog = tmp_path / "unstorable_circuits.py"
    prog.write_text(UNSTORABLE_CIRCUITS)
    out = run_cli("run", str(prog), ranks=1, timeout=100)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = open_job(job_dir_of(qshpc_home)).result()
    assert res[:3] == [0, 1, 2]
    assert "SerializationError: the return value of task 0 (circuits, list)" in res[3]
    assert "int64 is not JSON serializable" in res[3]
