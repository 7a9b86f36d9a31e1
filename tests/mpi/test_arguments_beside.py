"""Arguments pickled from a class of a module beside the program, run from another folder.

``save_arguments`` pickles what it cannot store natively (an instance of the user's
own class). On af9879d rank 0 loaded the arguments file before the program's folder
was on the path: from any other folder the job failed with "cannot load arguments
...: unreadable HDF5 (No module named 'mything')". A file beside the program named
like a library qshpc loads meanwhile must still not be taken for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qshpc import Job
from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

THING = "class Thing:\n    def __init__(self, n):\n        self.n = n\n"
PROG = (
    "import mything\nfrom qshpc import distribute_task, get, get_arguments, save_result\n"
    "@distribute_task()\ndef twice(t):\n    return 2 * t.n\n"
    "t = get_arguments()['thing']\n"
    "save_result({'n': t.n, 'task': get(twice(t)), 'cls': type(t) is mything.Thing})\n"
)


def _saved(prog_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(prog_dir))
    sys.modules.pop("mything", None)
    import mything  # type: ignore[import-not-found]

    from qshpc import save_arguments

    save_arguments(prog_dir / "args.h5", {"thing": mything.Thing(5)})
    sys.modules.pop("mything", None)


@pytest.mark.parametrize("how", ["launcher", "no fork server", "mpiexec"])
def test_a_pickled_argument_of_the_program_s_own_class_loads_from_anywhere(
    how: str, tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog_dir = tmp_path / "prog"
    prog_dir.mkdir()
    (prog_dir / "mything.py").write_text(THING)
    (prog_dir / "prog.py").write_text("import qiskit\n" + PROG)
    _saved(prog_dir, monkeypatch)
    # (after saving: this process would take it for h5py too, with the folder first)
    (prog_dir / "h5py.py").write_text("raise ImportError('the user h5py.py was imported')\n")
    env = {"QSHPC_FORK_SERVER": "0" if how == "no fork server" else "1"}
    args = ["run", "prog/prog.py", "--arguments", "prog/args.h5"]  # from tmp_path, not prog/
    if how == "mpiexec":
        out = run_cli(*args, ranks=3, cwd=tmp_path, env=env)
    else:
        out = run_cli(*args, "--workers", "2", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert Job(job_dir_of(qshpc_home)).result() == {"n": 5, "task": 10, "cls": True}
