"""Session 24, lead: run_circuits refuses before a step starts what its ranks would refuse
(review32 F7)."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qshpc.aer.distributed.run import run_circuits
from qshpc.errors import UserError


def test_unbound_parameters_are_refused_before_the_step() -> None:
    qc = QuantumCircuit(2)
    qc.rx(Parameter("theta"), 0)
    qc.cx(0, 1)
    with pytest.raises(
        UserError, match=r"circuit 0 .* unbound parameters \(theta\).*assign_parameters"
    ):
        run_circuits([qc], 2)


def test_a_reset_is_refused_before_the_step_with_a_hint_that_applies() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.reset(1)
    qc.cx(0, 1)
    with pytest.raises(UserError, match=r"has a 'reset'.*stays after transpiling.*one process"):
        run_circuits([qc], 2)
    plain = QuantumCircuit(2)
    plain.rz(0.3, 0)
    plain.cx(0, 1)
    with pytest.raises(UserError, match=r"has a 'rz'.*transpile=True\) transpiles them"):
        run_circuits([plain], 2, transpile=False)
