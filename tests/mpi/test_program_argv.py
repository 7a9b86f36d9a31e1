"""The program's ``sys.argv``, on rank 0 and in its tasks, is what ``python PROGRAM ARGS``
gives (review38 F10: a worker's tasks saw qshpc's own command line, ``['.../qshpc/__main__.py',
'run', 'io.py', '--job-dir', ...]``, and rank 0's ``sys.argv[0]`` was the absolute path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc import LocalClient, Program
from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import sys
from qshpc import distribute_task, get, save_result

@distribute_task()
def task_argv():
    return sys.argv

save_result({"rank0": list(sys.argv), "task": get(task_argv())})
"""


def _result(job: Path) -> dict[str, list[str]]:
    out = run_cli("result", str(job), "--json")
    assert out.returncode == 0, out.stderr
    value: dict[str, list[str]] = json.loads(out.stdout)
    return value


@pytest.mark.parametrize("how", ["workers2", "workers0", "mpiexec"])
def test_rank0_and_its_tasks_see_the_programs_argv(
    how: str, tmp_path: Path, qshpc_home: Path
) -> None:
    (tmp_path / "io.py").write_text(PROGRAM)
    plain = subprocess.run(
        [sys.executable, "io.py", "a", "-b"], cwd=tmp_path, capture_output=True, text=True
    )  # plain python: save_result outside a job prints nothing we need; it must not fail
    assert plain.returncode == 0, plain.stderr
    args = ["run", "io.py", "--", "a", "-b"]
    if how != "mpiexec":
        args[2:2] = ["--workers", "2" if how == "workers2" else "0"]
    out = run_cli(*args, cwd=tmp_path, ranks=3 if how == "mpiexec" else None)
    assert out.returncode == 0, out.stderr
    assert _result(job_dir_of(qshpc_home)) == {
        "rank0": ["io.py", "a", "-b"],
        "task": ["io.py", "a", "-b"],
    }


def test_local_client_gives_the_entrypoint_as_named_in_its_working_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "io.py").write_text(PROGRAM)
    program = Program(title="io", entrypoint="sub/io.py", working_dir=str(tmp_path))
    job = LocalClient(workers=1).run(program)
    assert job.result() == {"rank0": ["sub/io.py"], "task": ["sub/io.py"]}
