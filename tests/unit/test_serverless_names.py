"""docs/quantum-serverless.md lists every name of quantum-serverless 0.10.1's program and client API.

Each listed name is imported from ``qshpc`` (a ``Class.method`` row: the class
has the method), and each refused one fails at once with one line of text.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import qshpc
from qshpc import UserError

DOC = Path(__file__).resolve().parents[2] / "docs" / "quantum-serverless.md"
ROW = re.compile(r"^\| `([A-Za-z_][\w.]*)` \|[^|]*\| (same|equivalent|refused) \|")


def rows() -> list[tuple[str, str]]:
    found = [m.groups() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]
    assert len(found) > 60, "the table lost its rows"
    return [(name, status) for name, status in found]


@pytest.mark.parametrize(("name", "status"), rows())
def test_every_listed_name_imports(name: str, status: str) -> None:
    owner, _, member = name.partition(".")
    obj = getattr(qshpc, owner)
    if member:
        assert hasattr(obj, member), f"{owner} has no {member}"


def _call(obj: object) -> None:
    """Call ``obj`` with a placeholder for each required argument."""
    target = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(obj):
        params = params[1:]
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    obj(*["x"] * len(required))  # type: ignore[operator]


@pytest.mark.parametrize("name", [n for n, s in rows() if s == "refused"])
def test_refused_names_fail_at_once_with_one_line(name: str) -> None:
    with pytest.raises(UserError) as info:
        _call(getattr(qshpc, name))
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    assert "qshpc" in text or "distribute_task" in text, text


def test_import_stays_cheap_with_the_serverless_names() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qshpc import QuantumServerless, get_refs_by_status, QiskitPattern, Target, Job\n"
        "from qshpc import get_logger, ServerlessError, is_running_in_serverless, send_error\n"
        "print([m for m in ('qiskit', 'h5py', 'mpi4py', 'submitit') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# quantum-serverless 0.10.1's parameter names (from its source), which programs
# may pass by keyword: each must be a parameter of qshpc's name too.
KEYWORDS = {
    "put": ["value"],
    "get": ["object_refs", "timeout"],
    "get_refs_by_status": ["object_refs"],
    "distribute_task": ["target"],
    "distribute_qiskit_pattern": ["provider", "dependencies", "working_dir"],
    "save_result": ["result"],
    "parallel_transpile": ["circuits", "backends"],
    "circuit_serializer": ["circuit"],
    "circuit_deserializer": ["encoded_circuit"],
    "Target": ["cpu", "gpu", "qpu", "mem", "resources", "env_vars", "pip"],
    "Target.from_dict": ["dictionary"],
    "QiskitPattern": [
        "title",
        "entrypoint",
        "working_dir",
        "env_vars",
        "dependencies",
        "description",
        "version",
        "tags",
        "raw_data",
    ],
    "QiskitPattern.from_json": ["data"],
    "Configuration": ["workers", "min_workers", "max_workers", "auto_scaling", "python_version"],
    "QuantumServerless": ["providers"],
    "QuantumServerless.run": ["program", "arguments", "config"],
    "QuantumServerless.upload": ["program"],
    "QuantumServerless.get_job_by_id": ["job_id"],
    "QuantumServerless.file_upload": ["file"],
    "QuantumServerless.file_delete": ["file"],
    "QuantumServerless.context": ["provider"],
    "QuantumServerless.set_provider": ["provider"],
    "QuantumServerless.add_provider": ["provider"],
    "LocalClient.run": ["program", "arguments", "config"],
    # file_download takes both of qiskit-serverless's orders: tests/unit/test_fix36_files.py
    "BaseProvider": ["name", "host", "token", "compute_resource", "available_compute_resources"],
    "Job.result": ["wait", "cadence", "verbose"],
}


@pytest.mark.parametrize(("name", "params"), KEYWORDS.items())
def test_quantum_serverless_keyword_arguments_are_accepted(name: str, params: list[str]) -> None:
    owner, _, member = name.partition(".")
    obj = getattr(qshpc, owner)
    target = getattr(obj, member) if member else obj
    have = inspect.signature(target.__init__ if inspect.isclass(target) else target).parameters
    missing = [p for p in params if p not in have]
    assert not missing, f"{name} lacks quantum-serverless's parameters {missing}"


def test_put_and_get_by_keyword_as_quantum_serverless_programs_call_them() -> None:
    ref = qshpc.put(value=[1, 2], _owner=None)
    assert qshpc.get(object_refs=ref) == [1, 2]
    assert qshpc.get(object_refs=[ref], timeout=1) == [[1, 2]]
    with pytest.raises(UserError, match="_owner"):
        qshpc.put(value=1, owner=2)
