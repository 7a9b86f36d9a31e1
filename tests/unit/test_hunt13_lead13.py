"""An ``async def`` task run under a running event loop runs in a thread that lives on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import asyncio
from qshpc import distribute_task, get, save_result

@distribute_task()
async def build():
    from qiskit import QuantumCircuit  # the process's first import of qiskit
    qc = QuantumCircuit(1)
    qc.h(0); qc.t(0); qc.h(0)
    return qc

async def main():
    return get(build())

qc = asyncio.run(main())
from qiskit.transpiler import generate_preset_pass_manager
pm = generate_preset_pass_manager(1, basis_gates=["rz", "sx", "x", "cx"])
save_result({"size": pm.run(qc).size()})
"""


def test_an_async_task_that_imports_qiskit_first_does_not_crash_the_program(
    tmp_path: Path,
) -> None:
    # On 4bea949 the call ran in a thread of its own that then ended: qiskit 2.6,
    # first imported by a thread that ended, segfaults in the next transpile or at
    # exit (the job FAILED, or SUCCEEDED with the command killed by SIGSEGV, rc 139).
    prog = tmp_path / "async_first_import.py"
    prog.write_text(PROGRAM)
    env = {**os.environ, "QSHPC_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert "SUCCEEDED" in out.stdout + out.stderr
