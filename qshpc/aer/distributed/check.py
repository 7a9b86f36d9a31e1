"""A quick proof that the MPI Aer splits one statevector over ranks and stays exact.

``qshpc doctor`` runs :func:`self_test`: a small random circuit, transpiled
once, run as a 2-rank step with chunks small enough that every rank holds
several and gates cross ranks; its probabilities and a Pauli expectation value
with an X on the top qubit (the one whose amplitudes sit on another rank) are
compared with Qiskit's exact statevector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from qshpc.aer.distributed.install import AerMPI, locate, why_missing
from qshpc.aer.distributed.launch import StepLauncher
from qshpc.errors import QshpcError, UserError

#: Largest error accepted against the exact statevector.
TOLERANCE = 1e-9


@dataclass
class SelfTest:
    """Outcome of :func:`self_test`.

    Attributes:
        ok: True when the step ran and matched the exact result.
        detail: One line for people.
        ranks: Ranks of the step.
        hosts: Host of each rank.
        max_error: Largest difference from the exact probabilities and value.
        wall_s: Seconds, process start-up included.
    """

    ok: bool
    detail: str
    ranks: int = 0
    hosts: list[str] = field(default_factory=list)
    max_error: float = float("nan")
    wall_s: float = 0.0


def self_test(
    aer: AerMPI | None = None,
    ranks: int = 2,
    num_qubits: int = 10,
    timeout: float = 120.0,
    launcher: StepLauncher | None = None,
) -> SelfTest:
    """Run a ``num_qubits`` circuit over ``ranks`` ranks and compare it with the exact state."""
    from qiskit.circuit.random import random_circuit  # type: ignore[import-untyped]
    from qiskit.quantum_info import SparsePauliOp, Statevector  # type: ignore[import-untyped]

    from qshpc.aer.distributed.run import prepare, run_circuits
    from qshpc.aer.distributed.spec import Save

    aer = aer or locate()
    if aer is None:
        return SelfTest(False, why_missing())
    blocking = num_qubits - (ranks - 1).bit_length() - 1  # two chunks per rank
    circuit = prepare([random_circuit(num_qubits, 6, max_operands=3, seed=1)])[0]
    labels = ["X" + "I" * (num_qubits - 1), "Z" * num_qubits, "Y" + "I" * (num_qubits - 2) + "X"]
    obs = SparsePauliOp(labels, [0.5, 0.25, 0.125])
    terms = [(label, float(c.real), 0.0) for label, c in zip(labels, obs.coeffs, strict=True)]
    qubits = list(range(num_qubits))
    saves = [[Save("probabilities", qubits, "p"), Save("expectation_value", qubits, "ev", terms)]]
    start = time.monotonic()
    try:
        step = run_circuits([circuit], ranks, saves=saves, launcher=launcher, transpile=False,
                            options={"blocking_qubits": blocking}, timeout=timeout)  # fmt: skip
    except (QshpcError, UserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return SelfTest(False, f"the {ranks}-rank step failed: {first}", ranks)
    wall = time.monotonic() - start
    exact = Statevector(circuit)
    err = max(
        float(abs(step.probabilities(0, "p") - exact.probabilities()).max()),
        abs(step.value(0, "ev") - float(exact.expectation_value(obs).real)),
    )
    spread = int(step.result.get("metadata", {}).get("num_processes_per_experiments", 1))
    chunks = 2 ** (num_qubits - blocking)
    ok = err <= TOLERANCE and spread == ranks
    how = (f"one {num_qubits}-qubit statevector in {chunks} chunks over {spread} of {ranks} ranks, "
           f"max error {err:.1e} against the exact state ({wall:.1f} s)")  # fmt: skip
    return SelfTest(ok, how, ranks, step.hosts(), err, wall)


__all__ = ["TOLERANCE", "SelfTest", "self_test"]
