"""review37 (fix37): the V2 primitives' jobs on the ranks of a program (mpiexec -n 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_program

pytestmark = pytest.mark.mpi

CANCEL = """\
import time
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qshpc import save_result
from qshpc.aer import SamplerV2

t = Parameter("t")
qc = QuantumCircuit(6)
qc.h(range(6))
for q in range(5):
    qc.crz(t, q, q + 1)
qc.measure_all()
values = np.linspace(0, 1, 64)
out = []
# once a block runs: cancel() must cancel nothing (False) and result() come whole
job = SamplerV2(seed=1, options={"rows_per_task": 8}).run([(qc, values)], shots=64)
while not job.running() and not job.done():
    time.sleep(0.01)
ok = job.cancel()
result = job.result()
out.append([ok, job.cancelled(), result[0].data.meas.num_shots, result[0].data.meas.shape[0]])
# at once after run(): either all blocks are cancelled (True, result() raises), or none
job = SamplerV2(seed=1, options={"rows_per_task": 8}).run([(qc, values)], shots=64)
ok = job.cancel()
try:
    rows = job.result()[0].data.meas.shape[0]
except Exception as exc:
    rows = type(exc).__name__
out.append([ok, job.cancelled(), sum(r.cancelled() for r in job.refs), len(job.refs), rows])
save_result(out)
"""


def test_cancel_is_all_or_nothing(qshpc_home: Path, tmp_path: Path) -> None:
    """TasksJob.cancel() returned False yet cancelled the queued blocks, and result() then
    raised CancelledError: the blocks that ran were lost (review37 F2)."""
    job = run_program(qshpc_home, tmp_path / "cancel.py", CANCEL, ranks=3, timeout=200)
    started, early = job.result()
    assert started == [False, False, 64, 64]
    ok, cancelled, blocks_cancelled, blocks, rows = early
    if ok:
        assert cancelled and blocks_cancelled == blocks == 8 and rows == "CancelledError"
    else:
        assert not cancelled and blocks_cancelled == 0 and rows == 64
