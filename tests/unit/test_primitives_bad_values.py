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
