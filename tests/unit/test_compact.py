"""``compact``: a split run's circuits without their idle qubits give the same values."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("qiskit")


def test_compacted_circuits_keep_every_saved_value() -> None:
    """Random circuits transpiled onto a 19-qubit device, random Pauli sums over all of its
    qubits (X or Y on an idle qubit included) and marginals: equal to 1e-12 on the
    circuit without its idle qubits, with the saves moved."""
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit.quantum_info import SparsePauliOp, Statevector
    from qiskit.transpiler import CouplingMap

    from qshpc.aer.distributed.compact import compact
    from qshpc.aer.distributed.spec import Save

    rng = random.Random(5)
    device = CouplingMap.from_heavy_hex(3)
    smaller = 0
    for t in range(20):
        k = rng.randint(2, 6)
        isa = transpile(random_circuit(k, 3, max_operands=2, seed=t), coupling_map=device,
                        basis_gates=["u", "cx"], seed_transpiler=t)  # fmt: skip
        n = isa.num_qubits
        terms = [
            ("".join(rng.choice("IXYZ") for _ in range(n)), rng.uniform(-1, 1)) for _ in range(4)
        ]
        marginal = sorted(rng.sample(range(n), 2))
        saves = [[Save("expectation_value", list(range(n)), "e", [(lb, c, 0.0) for lb, c in terms]),
                  Save("probabilities", marginal, "p")]]  # fmt: skip
        (small,), (moved,) = compact([isa], saves)
        smaller += small.num_qubits < n
        whole, part = Statevector(isa), Statevector(small)
        if moved[0].qubits:
            op = SparsePauliOp.from_list([(lb, complex(r, i)) for lb, r, i in moved[0].paulis])
            value = part.expectation_value(op, moved[0].qubits).real
        else:  # on idle qubits only: a constant
            value = sum(r for _, r, _ in moved[0].paulis)
        assert abs(whole.expectation_value(SparsePauliOp.from_list(terms)).real - value) < 1e-12
        assert (
            np.abs(whole.probabilities(marginal) - part.probabilities(moved[1].qubits)).max()
            < 1e-12
        )
        assert small.num_clbits == isa.num_clbits
    assert smaller == 20


def test_a_circuit_acting_on_every_qubit_or_saving_its_state_is_kept_whole() -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.compact import compact
    from qshpc.aer.distributed.spec import Save

    full = QuantumCircuit(3)
    full.h(range(3))
    partial = QuantumCircuit(3)
    partial.h(0)
    rows = [[Save("expectation_value", [0, 1, 2], "e", [("ZZZ", 1.0, 0.0)])],
            [Save("statevector", [], "s")]]  # fmt: skip
    out, saves = compact([full, partial], rows)
    assert out[0] is full and out[1] is partial and saves == rows
    (small,), ((save,),) = compact([partial], [[Save("expectation_value", [0, 1, 2], "e",
                                                    [("XII", 1.0, 0.0)])]])  # fmt: skip
    assert small.num_qubits == 1 and save.qubits == [] and save.paulis == [("", 0.0, 0.0)]


def test_review22_edges_of_compact() -> None:
    """An observable on idle qubits only is a constant (no qubit kept that nothing acts on:
    Aer crashed on one, truncation off); complex coefficients leave the circuit whole (the
    step refuses it, as before); a barrier keeps its label; a 0-qubit operation stays."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import GlobalPhaseGate

    from qshpc.aer.distributed.compact import compact
    from qshpc.aer.distributed.spec import Save

    c = QuantumCircuit(4)
    c.h(0)
    c.append(GlobalPhaseGate(0.5), [])
    c.barrier(0, 3, label="here")
    idle_only = Save("expectation_value", [2, 3], "e", [("II", 1.0, 0.0), ("IX", 0.5, 0.0),
                                                        ("ZI", 0.25, 0.0)])  # fmt: skip
    (small,), ((save,),) = compact([c], [[idle_only]])
    assert small.num_qubits == 1 and save.qubits == [] and save.paulis == [("", 1.25, 0.0)]
    assert [i.operation.name for i in small.data] == ["h", "global_phase", "barrier"]
    assert small.data[2].operation.label == "here"
    hermitian_not = Save("expectation_value", [0, 1, 2, 3], "e", [("XIII", 0.0, 1.0)])
    out, _ = compact([c], [[hermitian_not]])
    assert out[0] is c


def test_truncation_is_turned_off_only_when_every_qubit_is_acted_on() -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.compact import acts_on_all
    from qshpc.aer.distributed.spec import Save

    c = QuantumCircuit(3)
    c.h(0)
    c.cx(0, 1)
    assert not acts_on_all(c, [])  # qubit 2: nothing acts on it (compact left it: Aer crashed)
    assert acts_on_all(c, [Save("probabilities", [2], "p")])
    assert acts_on_all(c, [Save("expectation_value", [0, 1, 2], "e", [("ZII", 1.0, 0.0)])])
    assert not acts_on_all(c, [Save("expectation_value", [0, 1, 2], "e", [("IZZ", 1.0, 0.0)])])


def test_qubits_only_measured_are_dropped_and_read_0() -> None:
    """``measure_all()`` after transpiling onto 19 qubits: compact keeps the 3 qubits gates
    act on and every clbit; the counts (full register width) are plain Aer's of the
    circuit as written. On e5f893c the measured qubits were kept: a 19-qubit split."""
    from qiskit import QuantumCircuit, transpile
    from qiskit.transpiler import CouplingMap
    from qiskit_aer import AerSimulator

    from qshpc.aer.distributed.compact import compact, compact_whole

    qc = QuantumCircuit(3)
    qc.x(0)
    qc.cx(0, 1)
    qc.h(2)
    qc.h(2)
    isa = transpile(qc, coupling_map=CouplingMap.from_heavy_hex(3),
                    basis_gates=["u", "cx"], seed_transpiler=1)  # fmt: skip
    isa.measure_all()
    (small,), _ = compact([isa], [[]])
    assert small.num_qubits == 2 and small.num_clbits == isa.num_clbits == 19

    def counts(c: QuantumCircuit) -> dict[str, int]:
        run = AerSimulator().run(c, shots=20, seed_simulator=1)
        return dict(run.result().get_counts())

    assert counts(small) == counts(isa) and len(next(iter(counts(small)))) == 19
    (noisy,), _, _ = compact_whole([isa], [[]], reads_zero=False)  # (run_circuits: a noise model)
    assert noisy is isa


def test_compact_whole_says_whether_every_qubit_is_acted_on() -> None:
    """The flag ``run_circuits`` reads instead of walking each circuit again
    (``acts_on_all`` of the circuit compact gives back), in every branch of compact."""
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.compact import acts_on_all, compact_whole
    from qshpc.aer.distributed.spec import Save

    full = QuantumCircuit(3)
    full.h(range(3))
    part = QuantumCircuit(4, 4)
    part.h(0)
    part.cx(0, 1)
    part.measure_all(add_bits=False)
    idle = QuantumCircuit(3)
    flow = QuantumCircuit(3, 1)
    flow.h(0)
    flow.measure(0, 0)
    with flow.if_test((flow.clbits[0], 1)):
        flow.x(1)
    e = Save("expectation_value", [0, 1, 2], "e", [("IIZ", 1.0, 0.0)])
    cases = [(full, []), (part, []), (part, [Save("probabilities", [3], "p")]), (idle, [e]),
             (flow, []), (full, [Save("statevector", [], "s")]), (QuantumCircuit(1), [])]  # fmt: skip
    circuits, saves, whole = compact_whole([c for c, _ in cases], [r for _, r in cases])
    assert whole == [acts_on_all(c, r) for c, r in zip(circuits, saves, strict=True)]
    assert whole == [True, True, True, True, False, True, False]
    assert [c.num_qubits for c in circuits] == [3, 2, 3, 1, 3, 3, 1]
