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


def test_a_node_failure_names_the_resume_and_slurm_s_sigterm() -> None:
    """review34 F8: NODE_FAIL named only --requeue (for the next submit), and the store's
    'job cancelled: received SIGTERM' read as a cancel someone asked for."""
    from qshpc.submit.state import SlurmView, _explained

    view = SlurmView(raw="NODE_FAIL", exit_code="0:0", reason="NodeFail")
    text = _explained(view, "job cancelled: received SIGTERM", "20261205-1")
    assert "a node of the job failed" in text
    assert "`qshpc submit --resume 20261205-1` runs only the unfinished tasks" in text
    assert "rank 0 received Slurm's SIGTERM as it ended the job (NODE_FAIL)" in text
    assert "job cancelled" not in text
    other = _explained(SlurmView(raw="OUT_OF_MEMORY", exit_code="0:0"), "boom", "J")
    assert other.endswith("\nboom") and "`qshpc submit --resume J`" in other
