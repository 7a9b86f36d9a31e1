"""Session 10's hunt (hunt10d): the Aer layer's fast paths against Aer and Qiskit.

Each test says what happened on main b4a6c60.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(240)]


def _device_isa():  # type: ignore[no-untyped-def]
    """``h; cp(t); h`` transpiled onto rz/sx/x/cx: ISA for Aer, its global phase ``pi/2 + t/4``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    t = Parameter("t")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cp(t, 0, 1)
    qc.h(1)
    qc.ry(t, 0)
    from qiskit import transpile
    from qiskit.providers.fake_provider import GenericBackendV2

    backend = GenericBackendV2(2, basis_gates=["rz", "sx", "x", "cx"], seed=1)
    isa = transpile(qc, backend, optimization_level=1, seed_transpiler=1)
    return qc, isa


def test_parametrized_global_phase_on_one_core() -> None:
    """On b4a6c60 a rank of one core (every rank of ``mpiexec -n 3`` on 2 cores) asked Aer
    to bind exact runs' rows at run time, which Aer cannot do for a parametrized global
    phase: V1 Sampler, run_sweep, Estimator, SamplerV2 and EstimatorV2 of a circuit
    transpiled onto a device basis failed with ``RuntimeError: Aer failed: ... Invalid
    parameterized qobj: instruction param position out of range``; with two cores they
    gave the values. Now such runs bind the rows as with more cores."""
    from qiskit.circuit import ParameterExpression
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import Estimator, Sampler, run_sweep
    from qshpc.task.context import set_task_threads

    qc, isa = _device_isa()
    assert isinstance(isa.global_phase, ParameterExpression)
    vals = [[0.4], [1.9]]
    obs = SparsePauliOp("XZ")
    want_ev = [Statevector(qc.assign_parameters(v)).expectation_value(obs).real for v in vals]
    want_p = [Statevector(qc.assign_parameters(v)).probabilities() for v in vals]
    old = set_task_threads(1)
    try:
        measured = isa.measure_all(inplace=False)
        dists = Sampler().run([measured] * 2, vals).result().quasi_dists
        evs = run_sweep(isa, vals, observables=[obs.apply_layout(isa.layout)])
        one = Estimator().run(isa, obs.apply_layout(isa.layout), vals[1]).result().values
    finally:
        set_task_threads(old)
    for d, p in zip(dists, want_p, strict=True):
        assert np.allclose([d.get(k, 0.0) for k in range(4)], p)
    assert np.allclose(evs.ravel(), want_ev)
    assert np.allclose(one, want_ev[1:])


GP_PROGRAM = """\
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qshpc import distribute_task, get, save_result
from qshpc.aer import EstimatorV2, Sampler

t = Parameter("t")
qc = QuantumCircuit(2)
qc.h(0)
qc.cp(t, 0, 1)
qc.h(1)
qc.ry(t, 0)
isa = transpile(qc, GenericBackendV2(2, basis_gates=["rz", "sx", "x", "cx"], seed=1),
                optimization_level=1, seed_transpiler=1)
obs = SparsePauliOp("XZ").apply_layout(isa.layout)

@distribute_task()
def v1(circuit):
    m = circuit.measure_all(inplace=False)
    return [dict(d) for d in Sampler().run([m, m], [[0.4], [1.9]]).result().quasi_dists]

@distribute_task()
def v2(circuit):
    return EstimatorV2().run([(circuit, obs, [[0.4], [1.9]])]).result()[0].data.evs.tolist()

save_result({"v1": get(v1(isa)), "v2": get(v2(isa))})
"""


@pytest.mark.mpi
def test_parametrized_global_phase_on_the_ranks(tmp_path: Path) -> None:
    """The same in tasks under ``mpiexec -n 3`` (on b4a6c60 both tasks failed so)."""
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.store import JobReader

    prog = tmp_path / "gp.py"
    prog.write_text(GP_PROGRAM)
    out = run_cli("run", str(prog), ranks=3, timeout=180)
    assert out.returncode == 0, out.stderr
    with JobReader.open(job_dir_of(Path(os.environ["QSHPC_HOME"]))) as r:
        got = r.result()
    qc, _ = _device_isa()
    states = [Statevector(qc.assign_parameters([v])) for v in (0.4, 1.9)]
    for d, sv in zip(got["v1"], states, strict=True):
        assert np.allclose([d.get(k, 0.0) for k in range(4)], sv.probabilities())
    want = [sv.expectation_value(SparsePauliOp("XZ")).real for sv in states]
    assert np.allclose(got["v2"], want)


def _swapped_controlled():  # type: ignore[no-untyped-def]
    """A circuit Aer does not run as it is (a gate of its own), with a parametrized
    controlled rotation (Aer cannot bind it: decomposed) and swaps at the end (at
    levels 2 and 3 the transpile elides them into its layout)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    t = Parameter("t")
    sub = QuantumCircuit(1, name="myh")
    sub.h(0)
    qc = QuantumCircuit(3)
    qc.append(sub.to_gate(), [0])
    qc.ry(0.3, 2)
    qc.cp(t, 0, 1)
    qc.crx(t, 1, 2)
    qc.x(0)
    qc.swap(0, 2)
    qc.swap(1, 2)
    return qc


@pytest.mark.parametrize("level", [2, 3])
def test_decomposed_parametrized_gates_keep_the_transpiles_layout(level: int) -> None:
    """On b4a6c60, at optimization_level 2 or 3, the decomposition of the operations Aer
    cannot bind (``cp(t)``, ``crx(t)``) dropped the layout in which the transpile had put
    the swaps it elided, so the measured qubits and the observables were read off the
    wrong qubits: V1 ``Sampler`` {0: 0.489, 1: 0.489, 4: 0.011, 5: 0.011} (outcomes 4
    and 5 are impossible; exact: {0: 0.489, 1: 0.011, 2: 0.489, 3: 0.011}), and wrong
    values from ``run_sweep``, ``SamplerV2`` (shots of 4 and 5) and ``EstimatorV2``,
    without a word. Now the decomposed circuit keeps the transpile's layout."""
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import EstimatorV2, Sampler, SamplerV2, run_sweep

    qc = _swapped_controlled()
    vals = [[0.7], [2.1]]
    states = [Statevector(qc.assign_parameters(v)) for v in vals]
    obs = SparsePauliOp(["ZIX", "IZI", "ZZZ"], [1.0, 0.5, -0.7])
    want_ev = [sv.expectation_value(obs).real for sv in states]
    measured = qc.measure_all(inplace=False)
    for _ in range(2):  # the second run's transpile comes from the rank's cache
        dists = Sampler(options={"optimization_level": level}).run([measured] * 2, vals)
        for d, sv in zip(dists.result().quasi_dists, states, strict=True):
            assert np.allclose([d.get(k, 0.0) for k in range(8)], sv.probabilities())
        evs = run_sweep(qc, vals, observables=[obs], optimization_level=level)
        assert np.allclose(evs.ravel(), want_ev)
    ev2 = EstimatorV2(options={"optimization_level": level}).run([(qc, obs, vals)]).result()
    assert np.allclose(ev2[0].data.evs, want_ev)
    shots = SamplerV2(seed=1, options={"optimization_level": level}).run([(measured, vals, 500)])
    seen = {int(k, 2) for k in shots.result()[0].data.meas.get_counts()}
    assert seen <= {0, 1, 2, 3}


def test_numpy_integer_shots_and_seeds_are_taken_as_aer_takes_them() -> None:
    """``shots=np.int64(100)`` and a seed of ``np.int64(5)`` were refused with a UserError
    (on 607568b; hunt10d, left) where Aer takes them: a program that computes its shots
    with numpy stopped. Now numpy's integers are ints; a float is still refused."""
    import numpy as np
    from qiskit import QuantumCircuit

    from qshpc.aer import Sampler
    from qshpc.errors import UserError

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    got = Sampler(options={"seed": np.int64(5)}).run(qc, shots=np.int64(100)).result()
    want = Sampler(options={"seed": 5}).run(qc, shots=100).result()
    assert got.quasi_dists[0] == want.quasi_dists[0]
    assert got.quasi_dists[0].shots == 100
    with pytest.raises(UserError, match="shots must be a positive int"):
        Sampler().run(qc, shots=np.float64(3.0)).result()
