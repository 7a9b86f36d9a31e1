"""Session 12, hunt12a: researcher programs on worker ranks (mpiexec)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc import LocalClient, Program

pytestmark = pytest.mark.mpi

METHOD_TASKS = """
from qshpc import distribute_task, get, save_result


class Solver:
    def __init__(self, k):
        self.k = k

    @distribute_task()
    def scale(self, x):
        return self.k * x


save_result([get(Solver(3).scale(i)) for i in range(3)] + [get(Solver.scale(Solver(2), 5))])
"""


def test_a_task_defined_in_a_class_runs_on_a_worker_with_its_instance(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """The instance travels to the worker by value (the class is the program's own)."""
    (tmp_path / "methods.py").write_text(METHOD_TASKS)
    program = Program(title="methods", entrypoint="methods.py", working_dir=str(tmp_path))
    assert LocalClient(workers=1).run(program).result(timeout=120) == [0, 3, 6, 10]
