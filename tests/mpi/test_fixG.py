"""A result read back from the store comes back as the task returned it, or stays in memory
(session 26, fixG; review45 F1, F3, F4, F8 of fix42a's read-back of results over
``QSHPC_RESULT_MEMORY_MAX``, set to its 64 KiB minimum here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.mpi]


def _run(prog: Path, source: str, *args: str, env: dict[str, str] | None = None) -> Any:
    prog.write_text(source)
    env = {"QSHPC_RESULT_MEMORY_MAX": "65536", **(env or {})}
    return run_cli("run", str(prog), *args, timeout=300, env=env)


def _report(out: Any) -> Any:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])


# Each value is over the 64 KiB threshold; what the program checks of each is what the
# store lost before (bytes for bytearray, two copies for one object, an int for MeasLevel).
KINDS = """
import json
import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit.result.models import MeasLevel
from qshpc import distribute_task, get

@distribute_task()
def make(name):
    if name == "bytearray":
        return bytearray(200_000)
    if name == "nested_bytearray":
        return {"x": [bytearray(b"ab" * 100_000)], "a": np.ones(20_000)}
    if name == "aliased":
        a = np.zeros(20_000)
        return {"state": a, "view": a}
    if name == "aliased_list":
        row = [float(i) for i in range(10_000)]
        return [row, row]
    if name == "metadata":
        return np.zeros(20_000, dtype=np.dtype(float, metadata={"unit": "m"}))
    if name == "aer_result":
        qc = QuantumCircuit(12, 12)
        qc.h(range(12))
        qc.measure(range(12), range(12))
        return AerSimulator(seed_simulator=1).run(qc, shots=4000, memory=True).result()

@distribute_task()
def kind(x):
    return type(x).__name__

checks = {
    "bytearray": lambda v: type(v) is bytearray and v.extend(b"x") is None,
    "nested_bytearray": lambda v: type(v["x"][0]) is bytearray,
    "aliased": lambda v: v["state"] is v["view"],
    "aliased_list": lambda v: v[0] is v[1],
    "metadata": lambda v: v.dtype.metadata == {"unit": "m"},
    "aer_result": lambda v: all(type(e.meas_level) is MeasLevel for e in v.results),
}
report = {}
for name, check in checks.items():
    r = make(name)
    report[name] = bool(check(get(r))) and bool(check(get(r)))
report["argument"] = get(kind(make("bytearray"))) == "bytearray"
print("RESULT", json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("workers", ["1", "0"])
def test_results_over_the_threshold_come_back_as_returned(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    report = _report(_run(tmp_path / "kinds.py", KINDS, "--workers", workers))
    assert report and all(report.values()), report


# The program flips bytes in the middle of its journal, where its results wait, then gets.
FLIP = """
import os
from pathlib import Path
import numpy as np
from qshpc import distribute_task, get, wait

@distribute_task()
def make(i):
    return np.arange(300_000, dtype=np.float64) + i

refs = [make(i) for i in range(4)]
wait(refs, num_returns=4)
job = sorted(Path(os.environ["QSHPC_HOME"], "jobs").iterdir())[-1]
journal = job / "job.journal"
b = bytearray(journal.read_bytes())
for k in range(len(b) // 2, len(b) // 2 + 64):
    b[k] ^= 0xFF
journal.write_bytes(bytes(b))
for i, r in enumerate(refs):
    try:
        ok = np.array_equal(get(r), np.arange(300_000, dtype=np.float64) + i)
        print("GET", i, "equal" if ok else "WRONG", flush=True)
    except Exception as exc:
        print("ERROR", i, type(exc).__name__, exc, flush=True)
"""


def test_a_changed_journal_byte_is_an_error_not_a_wrong_value(
    qshpc_home: Path, tmp_path: Path
) -> None:
    out = _run(tmp_path / "flip.py", FLIP, "--workers", "1", env={"QSHPC_CHECKPOINT_S": "3600"})
    job = job_dir_of(qshpc_home).name
    assert "WRONG" not in out.stdout, out.stdout
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERROR ")]
    assert errors, out.stdout + out.stderr
    for line in errors:
        assert "StoreError cannot read back the result of task" in line, line
        assert f"(make) of job {job}" in line and "does not match its checksum" in line, line
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr


# A bytearray result of a job that then fails: the resume runs its task again (its record
# notes that the store holds it as bytes), so the program gets a bytearray again.
RESUME = """
import json, os
import numpy as np
from qshpc import distribute_task, get

@distribute_task()
def make(i):
    return {"b": bytearray(b"x" * 100_000), "a": np.arange(20_000) + i}

values = [get(make(i)) for i in range(3)]
if os.environ.get("FAIL") == "1":
    raise SystemExit("failing on purpose")
print("RESULT", json.dumps([type(v["b"]).__name__ for v in values]), flush=True)
"""


def test_a_resumed_job_gives_bytearray_results_back(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "resume.py"
    first = _run(prog, RESUME, "--workers", "1", env={"FAIL": "1"})
    assert first.returncode != 0, first.stdout + first.stderr
    job = job_dir_of(qshpc_home)
    out = run_cli(
        "run", str(prog), "--resume", job.name, "--workers", "1", timeout=300,
        env={"QSHPC_RESULT_MEMORY_MAX": "65536"},
    )  # fmt: skip
    assert _report(out) == ["bytearray"] * 3
