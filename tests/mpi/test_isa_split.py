"""A circuit transpiled for a device, split over ranks: sized and run by the qubits it acts on.

A 12-qubit circuit transpiled onto a 57-qubit device keeps 57 qubits. Split over 2
ranks (``QSHPC_DISTRIBUTE=10``), on b295950 EstimatorV2 refused it (a 57-qubit
statevector, 10^9 GiB a rank), as did the V1 Sampler in a task holding 2 ranks and
SamplerV2's split. Needs the MPI Aer (``make install-aer-mpi``), as
tests/mpi/test_aer_distributed.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.aer.distributed.install import AerMPI
from tests.mpi.test_aer_distributed import aer_mpi  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def test_transpiled_circuits_split_over_ranks_by_the_qubits_they_act_on(
    aer_mpi: AerMPI,  # noqa: F811
    qshpc_home: Path,
) -> None:
    from qshpc.store import JobReader
    from tests.conftest import PROGRAMS, job_dir_of, run_cli

    out = run_cli("run", str(PROGRAMS / "split_isa.py"), "--workers", "2",
                  timeout=400, env={"QSHPC_DISTRIBUTE": "10"})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    with JobReader.open(job_dir_of(qshpc_home)) as r:
        result = r.result()
        tasks = r.tasks()
    split, one = result["split"], result["one"]
    assert split["widths"] == [57, 57]
    assert abs(split["evs"][0] - result["exact_ev"]) < 1e-9
    assert all(abs(a - b) < 1e-9 for a, b in zip(split["evs"], one["evs"], strict=True))
    assert abs(split["evs"][1]) < 1e-12  # X on an idle qubit: <0|X|0> = 0
    assert split["counts"] == one["counts"]  # the same seed: the same shots, split or not
    assert sum(split["counts"].values()) == 2000
    exact = {int(k): v for k, v in result["exact_p"].items()}
    for dist in (split["v1"], one["v1"]):
        assert max(abs(float(dist.get(k, 0.0)) - v) for k, v in exact.items()) < 1e-9
    # measure_all() after transpiling (57 measured, 12 acted on): on e5f893c refused (a
    # 57-qubit split); now split over the 12, the other 45 bits 0, as on one rank
    assert split["after_counts"] == one["after_counts"]
    assert sum(split["after_counts"].values()) == 2000
    physical = result["physical"]
    on_device = {
        sum(1 << physical[j] for j in range(12) if k >> j & 1): v for k, v in exact.items()
    }
    for dist in (split["after_v1"], one["after_v1"]):
        assert max(abs(float(dist.get(str(k), 0.0)) - v) for k, v in on_device.items()) < 1e-9
        assert {int(k) for k, v in dist.items() if abs(v) > 1e-12} <= set(on_device)
    assert all(len(key) == 57 for key in split["after_counts"])
    assert {int(key, 2) for key in split["after_counts"]} <= set(on_device)
    steps = [t for t in tasks if (t.get("provenance") or {}).get("aer_steps")]
    names = {t["function"] for t in steps}
    assert {"qshpc.EstimatorV2.split", "qshpc.SamplerV2.split", "v1"} <= names, names
    for t in steps:
        for entry in t["provenance"]["aer_steps"]:
            assert entry["ranks"] == 2 and entry["split"] == 2, entry


def test_a_split_marginal_of_few_qubits_is_not_truncated_away(aer_mpi: AerMPI) -> None:  # noqa: F811
    """A 2-qubit marginal (or one X) of a 12-qubit circuit over 2 ranks: Aer's truncation
    dropped the qubits the saved values do not depend on, and then refused the chunks
    sized for 12 (``cache blocking : there are gates operation can not cache blocked``)."""
    import numpy as np
    from qiskit.circuit.random import random_circuit
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    c = random_circuit(12, 4, max_operands=2, seed=3)
    saves = [[Save("probabilities", [0, 1], "p"),
              Save("expectation_value", list(range(12)), "e", [("I" * 11 + "X", 1.0, 0.0)])]]  # fmt: skip
    step = run_circuits([c], 2, saves=saves, timeout=120)
    exact = Statevector(c)
    assert (
        np.abs(np.asarray(step.probabilities(0, "p")) - exact.probabilities([0, 1])).max() < 1e-12
    )
    assert (
        abs(step.value(0, "e") - exact.expectation_value(SparsePauliOp("I" * 11 + "X")).real)
        < 1e-12
    )


def test_circuits_of_several_widths_run_a_step_each(aer_mpi: AerMPI) -> None:  # noqa: F811
    """Two 12-qubit circuits in one call, one acting on 4 qubits: once compacted, one step
    sized for 12 crashed the ranks on the 4-qubit one (SIGSEGV, review22); a step each width
    now, read back in the call's order, exact."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.random import random_circuit
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    a = random_circuit(12, 3, max_operands=2, seed=1)
    b = QuantumCircuit(12)
    b.compose(random_circuit(4, 3, max_operands=2, seed=2), range(4), inplace=True)
    z = [("Z" * 12, 1.0, 0.0)]
    step = run_circuits([a, b], 2, saves=[[Save("expectation_value", list(range(12)), "e", z)],
                                          [Save("expectation_value", list(range(12)), "e", z),
                                           Save("probabilities", [0, 1], "p")]], timeout=120)  # fmt: skip
    for i, c in enumerate((a, b)):
        exact = Statevector(c).expectation_value(SparsePauliOp("Z" * 12)).real
        assert abs(step.value(i, "e") - exact) < 1e-12, (i, step.value(i, "e"), exact)
    assert abs(step.probabilities(1, "p") - Statevector(b).probabilities([0, 1])).max() < 1e-12
