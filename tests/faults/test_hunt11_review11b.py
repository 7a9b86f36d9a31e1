"""Session 11's review of hunt11b (review11b): what the merge of d6d5e64 left.

Each test says what happened on main 3986114 (hunt11b merged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task, get
from qshpc.program import backend
from qshpc.program.backend import InlineBackend

pytestmark = pytest.mark.timeout(120)


@distribute_task()
def bump(arr: Any) -> float:
    """Changes the array it was given in place (its own copy under one rank)."""
    arr[0] += 5.0
    return float(arr[0])


def test_one_rank_calls_get_writeable_copies_also_after_a_get() -> None:
    """docs/bad-input.md: under plain ``python`` or one rank a task's arrays are writeable
    copies. On 3986114 that held only until the program called ``get(ref)``: the get
    froze the object in place, and every later call got a read-only array (``bump``
    worked, then raised ``ValueError: assignment destination is read-only``)."""
    inline = InlineBackend()
    backend.activate(inline)
    try:
        ref = inline.put(np.zeros(3))
        assert get(bump(ref), timeout=60) == 5.0
        seen = get(ref)
        assert not seen.flags.writeable and seen[0] == 0.0  # the program's get: read-only
        assert get(bump(ref), timeout=60) == 5.0  # each call its own writeable copy
        assert get(ref)[0] == 0.0
    finally:
        backend.activate(None)


@distribute_task()
def writes_in_place(arr: Any) -> float:
    """Writes into the array it was given, as a program written for one rank does."""
    arr[0] = 1.0
    return float(arr[0])


def test_a_write_into_a_placed_array_on_a_worker_names_the_fix() -> None:
    """On a worker an array from ``put`` is read-only (as in Ray). On 3986114 the task
    failed with numpy's words alone, ``ValueError: assignment destination is read-only``:
    neither that ``put`` made it so nor what to do; the line now names ``arr.copy()``."""
    from qshpc.errors import TaskError
    from tests.unit.test_dispatcher import ranks

    with ranks(1) as r:
        ref = r.d.put(np.zeros(3))
        with pytest.raises(TaskError) as info:
            get(r.call(writes_in_place, ref), timeout=60)
    line = str(info.value).splitlines()[0]
    assert "assignment destination is read-only" in line
    assert "put()" in line and "arr = arr.copy()" in line
    assert isinstance(info.value, ValueError)  # still caught as numpy's ValueError


def test_pickled_arguments_refused_for_a_group_folder_name_it(tmp_path: Path) -> None:
    """``--arguments F`` with pickled values, F the user's own (0600) in a group-writable
    setgid project folder (2775). On 3986114 the line said ``others can write it or a
    folder above it, or another user owns one of them``: not which, so a user whose own
    folder was 0775 (a umask of 002) looked in vain. It now names the folder and why."""
    from fractions import Fraction

    from qshpc.errors import UserError
    from qshpc.jobs import prepare
    from qshpc.store import save_arguments

    proj = tmp_path / "proj"
    proj.mkdir()
    proj.chmod(0o2775)
    save_arguments(proj / "args.h5", {"x": Fraction(1, 3)})
    with pytest.raises(UserError) as info:
        prepare.load_arguments_file(proj / "args.h5")
    text = str(info.value)
    assert f"{proj}, a folder above it, can be written by its group (mode 2775)" in text
    assert "copy it into a folder of your own that only you can write" in text
    (proj / "args.h5").chmod(0o664)
    with pytest.raises(UserError, match=r"others can write it \(mode 0664\)"):
        prepare.load_arguments_file(proj / "args.h5")
    proj.chmod(0o755)
    (proj / "args.h5").chmod(0o600)
    assert prepare.load_arguments_file(proj / "args.h5") == {"x": Fraction(1, 3)}


RETURNS_PUT = """\
import numpy as np
from qshpc import distribute_task, get, put

@distribute_task()
def part(a):
    return a[:2]

v = get(part(put(np.arange(6.0))))
print("OUT", v.flags.writeable)
"""


def test_a_result_sliced_from_a_placed_array_is_writeable_on_workers(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """Under ``mpiexec -n 2`` a task returning ``a[:2]`` of its placed array: on 8cc329b
    and under one rank the program's ``get`` gave a writeable array; on 3986114 it is
    read-only with workers only (``res /= 2`` raises there, not on one rank or on a
    resume that reads it from the store)."""
    from tests.conftest import run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(RETURNS_PUT)
    out = run_cli("run", str(prog), ranks=2, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT True" in out.stdout
