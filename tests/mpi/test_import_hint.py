"""A seed-style program's imports that Qiskit 2 and qshpc do not have: one hint line.

The seed program imports ``quantum_serverless`` and ``qiskit.primitives.Sampler`` (the V1
Sampler, gone in Qiskit 2). On b295950 such a job failed with the bare ImportError; now
its summary says what to import instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("from qiskit.primitives import Sampler", "from qshpc.aer import Sampler"),
        ("from qiskit.primitives import Estimator", "from qshpc.aer import Sampler (or Estimator)"),
        ("from quantum_serverless import get_arguments", "imports changed to qshpc"),
        ("import qiskit_serverless", "docs/quantum-serverless.md"),
    ],
)
def test_an_import_the_seed_made_says_what_to_import_instead(
    tmp_path: Path, line: str, hint: str, qshpc_home: Path
) -> None:
    program = tmp_path / "seed.py"
    program.write_text(line + "\n")
    out = run_cli("run", str(program), "--workers", "0", "--job-dir", str(tmp_path / "job"))
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "qshpc: hint: " in text and hint in text, text
    lines = [x for x in out.stderr.splitlines() if x.startswith("qshpc: ")]
    # the summary names the error, then the hint (not the hint in the error's place)
    assert any("ImportError" in x or "ModuleNotFoundError" in x for x in lines), lines
    status = run_cli("status", str(tmp_path / "job"))
    assert hint in status.stdout, status.stdout


def test_other_import_errors_get_no_hint() -> None:
    from qshpc.runtime.program_main import import_hint

    assert import_hint(ImportError("cannot import name 'SamplerV2' from 'qiskit.primitives'",
                                   name="qiskit.primitives")) == ""  # fmt: skip
    assert import_hint(ModuleNotFoundError("No module named 'numpyy'", name="numpyy")) == ""
    assert import_hint(ValueError("quantum_serverless")) == ""
