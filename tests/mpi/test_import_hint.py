"""A seed-style program's imports that Qiskit 2 and qshpc do not have: one hint line.

The seed program imports ``quantum_serverless`` and ``qiskit.primitives.Sampler`` (the V1
Sampler, gone in Qiskit 2). On b295950 such a job failed with the bare ImportError; now
its summary says what to import instead.
"""

from __future__ import annotations

import json
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
        (
            "from qiskit_ibm_runtime import SamplerV2",
            "from qshpc.aer import SamplerV2, EstimatorV2",
        ),
        (
            "from qiskit.primitives import EstimatorV2",
            "from qshpc.aer import SamplerV2, EstimatorV2",
        ),
        # review36 F4 (fix36): Ray itself, qiskit-serverless's module paths, a name qshpc lacks
        ("import ray", "call f(x) instead of f.remote(x)"),
        ("from ray import remote", "get, put and wait are ray.get, ray.put and ray.wait"),
        (
            "from qshpc.core.decorators import remote",
            "import every quantum-serverless name from qshpc",
        ),
        ("import qshpc.utils", "there is no module qshpc.utils"),
        ("from qshpc import get_runtime_service", "docs/quantum-serverless.md lists each"),
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

    assert import_hint(ImportError("cannot import name 'StatevectorSamplr' from 'qiskit.primitives'",
                                   name="qiskit.primitives")) == ""  # fmt: skip
    assert import_hint(ModuleNotFoundError("No module named 'numpyy'", name="numpyy")) == ""
    assert import_hint(ValueError("quantum_serverless")) == ""


def test_a_pool_in_a_task_of_the_program_s_own_function_names_the_fix(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``multiprocessing.Pool.map(square, ...)`` in a task, ``square`` defined in the program:
    the worker's ``__main__`` is qshpc's, so pickle cannot find it by name. The task's
    error says so and what to do (a module beside the program, which works: checked too)."""
    (tmp_path / "helpers.py").write_text("def cube(x):\n    return x ** 3\n")
    program = tmp_path / "pool.py"
    program.write_text(
        "import multiprocessing as mp\n"
        "from helpers import cube\n"
        "from qshpc import distribute_task, get, save_result\n"
        "def square(x):\n    return x * x\n"
        "@distribute_task()\n"
        "def fan(f, method):\n"
        "    with mp.get_context(method).Pool(2) as pool:\n"
        "        return pool.map(f, range(4))\n"
        "save_result(get([fan(cube, 'fork'), fan(cube, 'spawn')]))\n"
        "get(fan(square, 'fork'))\n"
    )
    out = run_cli("run", str(program), "--workers", "1", "--job-dir", str(tmp_path / "job"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        "attribute lookup square on __main__ failed" in out.stderr
        or "__main__.square" in out.stderr
    )
    assert "define them in a module beside the program and import them from it" in out.stderr
    result = run_cli("result", str(tmp_path / "job"), "--json")
    assert json.loads(result.stdout) == [[0, 1, 8, 27], [0, 1, 8, 27]]  # (fork, spawn)


def test_a_card_shows_the_error_not_the_hint() -> None:
    """The notebook's job card, its jobs table and the report take an error's last line:
    the hint after it is what to do, not what went wrong (review22 F3)."""
    from qshpc.report.card import first_line

    text = (
        'Traceback (most recent call last):\n  File "seed.py", line 1, in <module>\n'
        "ImportError: cannot import name 'Sampler' from 'qiskit.primitives'\n"
        "qshpc: hint: Qiskit 2 removed the V1 primitives from qiskit.primitives; ...\n"
    )
    assert first_line(text).startswith("ImportError: cannot import name 'Sampler'")
