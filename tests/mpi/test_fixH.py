"""A worker stores a result only where the code its arguments name reads the program's
values (review46 H1, session 26 fixH).

A function of the user's module passed as an argument (``helpers.mul``, reading
``helpers.K``) or an object of a user class (``helpers.Model``, reading the class
attribute ``scale``) travels by name: the worker runs its own module's, with the
file's values. The key names the program's values (set by the program), so such a
result must not be stored: a later run in the program's process would get it back.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

HELPERS = """\
K = 1
def mul(x):
    return x * K
class Model:
    scale = 1
    def __init__(self, x):
        self.x = x
    def energy(self):
        return self.x * self.scale
"""
FUNCTION = """\
import json
from qshpc import distribute_task, get, save_result
import helpers
SET
@distribute_task(cache=True)
def t(f, x):
    return f(x)

r = get([t(helpers.mul, i) for i in range(1, 4)])
print("RESULT", json.dumps(r))
save_result(r)
"""
CLASS = """\
import json
from qshpc import distribute_task, get, save_result
import helpers
SET
@distribute_task(cache=True)
def t(m):
    return m.energy()

r = get([t(helpers.Model(i)) for i in range(1, 4)])
print("RESULT", json.dumps(r))
save_result(r)
"""
CASES = {"function": (FUNCTION, "helpers.K = 2"), "class": (CLASS, "helpers.Model.scale = 2")}
NOTE = "results of t computed on this worker are not cached"


def _result(out: subprocess.CompletedProcess[str]) -> tuple[object, str]:
    assert out.returncode == 0, out.stdout + out.stderr
    res = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    job = [ln for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    return json.loads(res[len("RESULT ") :]), job


def _prog(tmp_path: Path, case: str, set_it: bool) -> Path:
    text, assign = CASES[case]
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(text.replace("SET", assign if set_it else ""))
    return prog


@pytest.mark.parametrize("case", ["function", "class"])
@pytest.mark.parametrize("where", ["workers1", "mpiexec3"])
def test_a_value_the_arguments_code_reads_set_by_the_program_is_not_stored(
    tmp_path: Path, case: str, where: str
) -> None:
    prog = _prog(tmp_path, case, set_it=True)
    if where == "mpiexec3":
        out = run_cli("run", str(prog), ranks=3)
    else:
        out = run_cli("run", str(prog), "--workers", "1")
    value, _ = _result(out)
    assert value == [1, 2, 3]  # the workers import helpers from its file (as before)
    assert NOTE in out.stderr and "differs here from the program's" in out.stderr
    assert "no entries" in run_cli("cache", "ls").stdout  # nothing under a false key
    # In the program's process the program's value is used: not the workers' result.
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [2, 4, 6] and "from the cache" not in job, (value, job)


@pytest.mark.parametrize("case", ["function", "class"])
def test_the_arguments_code_as_in_its_file_is_stored_as_before(tmp_path: Path, case: str) -> None:
    prog = _prog(tmp_path, case, set_it=False)
    out = run_cli("run", str(prog), "--workers", "1")
    assert _result(out)[0] == [1, 2, 3] and NOTE not in out.stderr
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [1, 2, 3] and "3 from the cache" in job, (value, job)
