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
        "print([m for m in ('qiskit', 'h5py', 'mpi4py', 'submitit') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
