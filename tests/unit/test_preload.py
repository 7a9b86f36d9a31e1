"""What a worker preloads for a program (``QSHPC_PRELOAD=auto``): what the program's imports use."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.runtime.worker import program_needs

AER = ("qiskit", "qiskit_aer")


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("from qshpc import distribute_task\n@distribute_task()\ndef f(x):\n    return x\n", ()),
        ("from qiskit import QuantumCircuit\nfrom qshpc.aer import Sampler\n", AER),
        ("import qiskit\n", ("qiskit",)),
        ("from qiskit.primitives import StatevectorSampler\n", ("qiskit",)),
        ("from qshpc import aer\n", AER),
        ("import qshpc.primitives as p\n", AER),
        ("def task(c):\n    from qiskit_aer import AerSimulator\n    return AerSimulator()\n", AER),
        ("import qiskitfoo\nimport numpy\n", ()),
        ("from . import helper\n", ()),
        ("this is not python(\n", AER),  # unreadable: preload as before
    ],
)
def test_program_needs(tmp_path: Path, source: str, needs: tuple[str, ...]) -> None:
    program = tmp_path / "prog.py"
    program.write_text(source)
    assert program_needs(program) == needs


def test_a_missing_program_preloads_qiskit_and_aer(tmp_path: Path) -> None:
    assert program_needs(tmp_path / "gone.py") == AER
