"""review32 F4: a task declared ``target={"ranks": 3}`` that calls ``run_circuits()`` is told
which rank counts distributed Aer can use (was: "ranks must be a power of two (1, 2, 4,
...) for Aer's chunks, got 3", the 3 coming from the hold, no fix). Refused before any step
starts: no MPI build of Aer needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, run_cli

pytestmark = pytest.mark.mpi


def test_a_task_holding_three_ranks_is_told_to_declare_two_or_four(
    tmp_path: Path, qshpc_home: Path
) -> None:
    args = tmp_path / "args.json"
    args.write_text('{"qubits": 4, "ranks": 3, "hold": true}')
    out = run_cli("run", str(PROGRAMS / "wide_circuit.py"), "--arguments", str(args),
                  ranks=4, timeout=240)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert (
        "run_circuits: this task holds 3 ranks, and distributed Aer needs a power of two "
        "ranks (its chunks): declare target={'ranks': 2} or {'ranks': 4}, or pass ranks=2"
    ) in text, text
