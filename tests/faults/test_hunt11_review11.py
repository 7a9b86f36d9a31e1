"""Session 11's review (review11) of the session's merges (8cc329b..a0ecc98).

Each test says what happened on main a0ecc98.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import one_task_fails

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
        lambda: [_circuit_with_metadata({1, 2})] * 2,  # QPY's JSON: TypeError
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

    with pytest.raises(
        SerializationError, match=r"cannot encode a value of type|metadata cannot be written"
    ):
        encode_blob_parts(make())


def _circuit_with_lock_parameter():  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit
    from qiskit.circuit import Instruction

    qc = QuantumCircuit(1)
    qc.append(Instruction("g", 1, 0, [threading.Lock()]), [0])
    return qc


CIRCUITS = """\
from qiskit import QuantumCircuit

@distribute_task()
def circuits():
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.metadata = {"n": {1, 2}}  # a set: JSON cannot write it
    return [qc, qc]
"""


@pytest.mark.mpi
def test_circuits_that_cannot_be_stored_fail_their_task_inline(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On a0ecc98, ``mpiexec -n 1``: a task returning a list of circuits whose metadata QPY
    cannot write (``np.int64`` then; a set now) raised ``TypeError: Object of type int64 is not JSON
    serializable`` at the call, naming no task, and the job FAILED (on a worker the task
    failed alone). Now it fails alone on one rank too, with the worker's message."""
    _, error = one_task_fails(qshpc_home, tmp_path, "circuits", CIRCUITS, ranks=1)
    assert "SerializationError: the return value of task 0 (circuits, list)" in error
    assert "set is not JSON serializable" in error


def _annotated_circuits():  # type: ignore[no-untyped-def]
    """Circuits with an ``AnnotatedOperation``, each with its parameter values (or None)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import (
        AnnotatedOperation,
        ControlModifier,
        Gate,
        InverseModifier,
        Parameter,
    )
    from qiskit.circuit.library import RYGate

    rx = QuantumCircuit(1)
    rx.rx(0.7, 0)
    named_h = Gate("h", 1, [])  # a custom gate named like H, defined as RX(0.7)
    named_h.definition = rx
    a = QuantumCircuit(2, name="controlled_custom_h")
    a.x(0)
    a.append(AnnotatedOperation(named_h, ControlModifier(1)), [0, 1])
    yield a, None

    t = Parameter("t")
    b = QuantumCircuit(3, name="annotated_ry_t")
    b.h([0, 1, 2])
    b.append(AnnotatedOperation(RYGate(t), ControlModifier(2)), [0, 1, 2])
    yield b, [[0.4], [2.0]]

    my_ry = QuantumCircuit(1, name="my_ry")
    my_ry.ry(t, 0)
    c = QuantumCircuit(3, name="custom_control_annotated_t")
    c.h([0, 1, 2])
    c.append(my_ry.to_gate().control(2, annotated=True), [0, 1, 2])
    yield c, [[0.4], [2.0]]

    d = QuantumCircuit(1, name="inverse_ry_t")
    d.h(0)
    d.append(AnnotatedOperation(RYGate(t), InverseModifier()), [0])
    yield d, [[0.4], [2.0]]


@pytest.mark.parametrize("index", range(4))
def test_annotated_operations_run_as_they_are_defined(index: int) -> None:
    """On a0ecc98 (mend11's ``shadowed.py`` and ``unbound_definition``):
    ``AnnotatedOperation(Gate("h") defined as RX(0.7), ControlModifier(1))`` ran as a
    controlled H (EstimatorV2 <ZZ> = 0.0, Statevector: -0.765; unshadow did not look into
    an annotated operation's base, and the transpile synthesizes it by its name); and an
    annotated operation with a parameter (``AnnotatedOperation(RYGate(t),
    ControlModifier(2))``, a custom gate's ``control(2, annotated=True)``) was refused at
    ``run`` (``'AnnotatedOperation' object has no attribute 'definition'``) though it ran
    right on 8cc329b. Now both give the values of ``Statevector``."""
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import Estimator, EstimatorV2

    qc, rows = list(_annotated_circuits())[index]
    obs = SparsePauliOp("Z" * qc.num_qubits)
    bound = [qc] if rows is None else [qc.assign_parameters(r) for r in rows]
    want = [Statevector(b).expectation_value(obs).real for b in bound]
    pub = (qc, obs) if rows is None else (qc, obs, rows)
    evs = EstimatorV2().run([pub]).result()[0].data.evs
    assert np.allclose(np.ravel(evs), want), (qc.name, evs, want)
    values = Estimator().run([qc] * len(want), [obs] * len(want), rows or [[]]).result().values
    assert np.allclose(values, want), (qc.name, values, want)


def test_refusal_of_a_shadowing_gate_in_a_circuit_whose_name_holds_a_colon() -> None:
    """On a0ecc98 ``shadow_refusal`` cut its message at the first ``": "``, which a
    circuit's name may hold: ``PUB 0: circuit 'step: 1' cannot run on Aer: 1': its
    operation 'h' ...``. Now the reason starts at ``its operation``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate

    from qshpc.aer import SamplerV2
    from qshpc.errors import UserError

    qc = QuantumCircuit(1, name="step: 1")
    qc.append(Gate("h", 1, []), [0])
    qc.measure_all()
    with pytest.raises(UserError) as info:
        SamplerV2().run([qc])
    assert str(info.value).startswith(
        "PUB 0: circuit 'step: 1' cannot run on Aer: its operation 'h' (Gate) has the name"
    ), str(info.value)


def test_a_parameter_time_hamiltonian_gate_inside_a_custom_gate_is_refused_at_run() -> None:
    """mend11 refused ``HamiltonianGate(H, t)`` with a ``Parameter`` time at ``run`` (it has
    no definition until ``t`` has a value), but on a0ecc98 not one level down: in a
    ``to_gate()`` of a circuit holding it, ``run`` passed and ``job.result()`` raised
    ``TranspilerError: HighLevelSynthesis is unable to synthesize "hamiltonian"``, naming
    no PUB. Now it is refused at ``run`` naming the PUB, as at the top level."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import HamiltonianGate
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import EstimatorV2
    from qshpc.errors import UserError

    t = Parameter("t")
    step = QuantumCircuit(1, name="step")
    step.append(HamiltonianGate(np.diag([1.0, -1.0]), t), [0])
    qc = QuantumCircuit(1, name="evolve")
    qc.h(0)
    qc.append(step.to_gate(), [0])
    with pytest.raises(
        UserError, match=r"PUB 0: circuit 'evolve' cannot run on Aer: .*'hamiltonian'"
    ):
        EstimatorV2().run([(qc, SparsePauliOp("X"), [[0.1], [0.2]])])
    bound = qc.assign_parameters([0.3])  # with its value it runs
    evs = EstimatorV2().run([(bound, SparsePauliOp("X"))]).result()[0].data.evs
    assert np.isclose(float(evs), np.cos(0.6))
