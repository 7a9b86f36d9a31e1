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


AUTOMATIC = """\
from qiskit import QuantumCircuit
from qshpc import save_result
from qshpc.aer import EstimatorV2, SamplerV2

auto = {"backend_options": {"method": "automatic"}, "rows_per_task": 1}
ghz = QuantumCircuit(60)
ghz.h(0)
for q in range(59):
    ghz.cx(q, q + 1)
t = QuantumCircuit(3)
t.h(range(3))
t.t(0)
t.cx(0, 2)
t.measure_all()
sampled = SamplerV2(seed=3, options=auto).run([ghz.measure_all(inplace=False), t], shots=200)
estimated = EstimatorV2(options=auto).run([(ghz, ["Z" * 60, "X" * 60])])
s, e = sampled.result(), estimated.result()
save_result({
    "methods": [p.metadata["simulator_metadata"]["method"] for p in [*s, *e]],
    "ghz": s[0].data.meas.get_counts(),
    "t": s[1].data.meas.array.tolist(),
    "evs": e[0].data.evs.tolist(),
})
"""


def test_automatic_on_the_workers_is_the_same_as_here(qshpc_home: Path, tmp_path: Path) -> None:
    """F1 over ranks: the blocks sent to workers build the method chosen for their PUB."""
    import numpy as np
    from qiskit import QuantumCircuit

    from qshpc.aer import SamplerV2

    job = run_program(qshpc_home, tmp_path / "auto.py", AUTOMATIC, ranks=3, timeout=200)
    out = job.result()
    assert out["methods"] == ["stabilizer", "statevector", "stabilizer"]
    assert set(out["ghz"]) == {"0" * 60, "1" * 60} and out["evs"] == [1.0, 1.0]
    t = QuantumCircuit(3)
    t.h(range(3))
    t.t(0)
    t.cx(0, 2)
    t.measure_all()
    here = SamplerV2(seed=3, options={"backend_options": {"method": "statevector"}})
    spare = QuantumCircuit(1)
    spare.measure_all()
    array = here.run([spare, t], shots=200).result()[1].data.meas.array
    assert np.array_equal(array, np.array(out["t"], dtype=np.uint8))


FAILS = """\
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qshpc import save_result
from qshpc.aer import SamplerV2

a = Parameter("a")
ok = QuantumCircuit(2)
ok.h(0)
ok.cx(0, 1)
ok.rz(a, 1)
ok.measure_all()
t = QuantumCircuit(2)
t.h(0)
t.t(0)
t.cx(0, 1)
t.measure_all()
options = {"backend_options": {"method": "stabilizer"}, "rows_per_task": 1}
job = SamplerV2(seed=1, options=options).run([(ok, np.pi * np.arange(4)), t])
try:
    job.result()
    save_result("no error")
except Exception as exc:
    save_result(str(exc).splitlines()[0])
"""


def test_a_block_error_names_its_pub_not_only_the_task(qshpc_home: Path, tmp_path: Path) -> None:
    """F5: 'task p4 (qshpc.SamplerV2) failed ...' named no PUB (a task id is none)."""
    job = run_program(qshpc_home, tmp_path / "fails.py", FAILS, ranks=3, timeout=200)
    text = job.result()
    assert text.startswith("PUB 1: task p4 (qshpc.SamplerV2) failed on rank"), text
    assert "not Clifford, as this rank runs it: rz(0.7854)" in text
