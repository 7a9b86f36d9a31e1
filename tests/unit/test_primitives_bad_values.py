"""NaN or infinite parameter values are refused before any task runs.

Found by review (issue 15): Aer binds NaN without a word, so a row of NaN gave
the counts of a made-up state (every shot '1') and evs of NaN, where Qiskit's
StatevectorSampler refuses ("Binding to NaN.").
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qshpc.aer import EstimatorV2, SamplerV2
from qshpc.primitives import PubError

pytestmark = pytest.mark.timeout(120)


def _circuit(measure: bool) -> QuantumCircuit:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.ry(b, 1)
    if measure:
        qc.measure_all()
    return qc


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sampler_refuses_values_that_are_not_finite(bad: float) -> None:
    values = np.ones((3, 4, 2))
    values[2, 1, 1] = bad
    with pytest.raises(PubError, match=r"PUB 1: parameter b is .* at index \(2, 1\)"):
        SamplerV2().run([(_circuit(True), [0.0, 1.0]), (_circuit(True), values)])


def test_estimator_refuses_values_that_are_not_finite() -> None:
    with pytest.raises(PubError, match="PUB 0: parameter a is nan"):
        EstimatorV2().run([(_circuit(False), "ZZ", {"a": [0.1, np.nan], "b": [1.0, 2.0]})])


def test_finite_values_still_run() -> None:
    res = SamplerV2(seed=1).run([(_circuit(True), [[0.0, 0.0]])], shots=8).result()
    assert res[0].data.meas.get_counts() == {"00": 8}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_v1_primitives_refuse_values_that_are_not_finite(bad: float) -> None:
    """The V1 Sampler gave a QuasiDistribution of NaNs, the V1 Estimator a NaN, without a word."""
    from qshpc.aer import Estimator, Sampler, run_sweep
    from qshpc.errors import UserError

    words = (
        rf"circuit '.*': parameter b is {bad} in value set 1 \(1 value\(s\) are NaN or infinite\)"
    )
    with pytest.raises(UserError, match=words):
        Sampler().run(_circuit(True), [[0.0, 1.0], [1.0, bad]])
    with pytest.raises(UserError, match=words):
        Sampler(options={"shots": 10}).run(_circuit(True), [[0.0, 1.0], [1.0, bad]])
    with pytest.raises(UserError, match=words):
        run_sweep(_circuit(True), [[0.0, 1.0], [1.0, bad]])
    with pytest.raises(UserError, match=words):
        run_sweep(_circuit(False), [[0.0, 1.0], [1.0, bad]], observables=["ZZ"])
    with pytest.raises(UserError, match=rf"parameter a is {bad} in value set 0"):
        Estimator().run([_circuit(False)], ["ZZ"], [[bad, 1.0]])


def test_v1_values_are_checked_when_nothing_is_measured() -> None:
    """A circuit that measures nothing reads 0 without a run, and its values were never checked:
    two values for one parameter, or a NaN, gave {0: 1.0}."""
    from qshpc.aer import Sampler, run_sweep
    from qshpc.errors import UserError

    # the V1 Sampler refuses a circuit that measures nothing before its values (hunt11a)
    with pytest.raises(UserError, match=r"has no classical bits"):
        Sampler().run(_circuit(False), [0.0, 1.0, 2.0])
    with pytest.raises(UserError, match="parameter a is nan"):
        run_sweep(_circuit(False), [[np.nan, 1.0]])
    with pytest.raises(UserError, match=r"shape \(points, parameters\), got shape \(2, 1, 2\)"):
        run_sweep(_circuit(True), np.zeros((2, 1, 2)))


def test_v1_estimator_observable_errors_are_user_errors() -> None:
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import Estimator
    from qshpc.errors import UserError

    with pytest.raises(UserError, match=r"observable 0 \('ZQ'\): .*not valid"):
        Estimator().run([_circuit(False)], ["ZQ"], [[0.1, 0.2]])
    with pytest.raises(UserError, match=r"(?s)observable 0 .* not real: it is not Hermitian"):
        Estimator().run([_circuit(False)], [SparsePauliOp("ZZ", 1j)], [[0.1, 0.2]])
