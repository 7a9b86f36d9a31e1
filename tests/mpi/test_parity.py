"""quantum-serverless parity (issue 14), from the user's side: one program per point.

Each program runs twice: through ``LocalClient(workers=2)`` (the notebook way)
and under ``mpiexec -n 3 python -m qshpc run`` (the batch way). Both have two
worker ranks, so tasks cross ranks and nested calls run on a worker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from qshpc import LocalClient, Program, open_job
from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi

PARITY = PROGRAMS / "parity"
MODES = ["local_client", "mpiexec_3"]


def run_program(mode: str, name: str, home: Path, arguments: dict[str, Any] | None = None) -> Any:
    """Run ``tests/programs/parity/NAME`` the way ``mode`` says; return its saved result."""
    if mode == "local_client":
        program = Program(title=name, entrypoint=name, working_dir=str(PARITY))
        job = LocalClient(workers=2).run(program, arguments=arguments)
        return job.result(timeout=180)
    argv: list[str] = []
    if arguments:
        args = home.parent / f"args-{name}.json"
        args.write_text(json.dumps(arguments))
        argv = ["--arguments", str(args)]
    out = run_cli("run", str(PARITY / name), *argv, ranks=3, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return open_job(job_dir_of(home)).result()


@pytest.mark.parametrize("mode", MODES)
def test_get_refs_by_status_polls_one_at_a_time(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "refs_by_status.py", qshpc_home)
    assert res["steps"] == [1] * 6
    assert res["results"] == [i * i for i in range(6)]
    assert (res["ready"], res["not_ready"]) == (6, 0)
    assert (res["objs"], res["rest"]) == (2, 0)


@pytest.mark.parametrize("mode", MODES)
def test_wait_returns_exactly_num_returns_in_input_order(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "wait_exact.py", qshpc_home)
    assert res["exact"] == {"done": True, "pending": True}
    assert res["counts"] == [2, 2, 1]
    assert res["timeout0"] == [0, 1]
    assert res["waited0"] < 1.0  # timeout=0 looks once and returns
    assert res["mixed"] == [True, True]
    assert res["timed_out"] == [True, True]
    assert res["both"] == [2, 0]


@pytest.mark.parametrize("mode", MODES)
def test_object_refs_are_ready(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "objectref_ready.py", qshpc_home)
    assert res["wait"] == [2, 0]
    assert res["by_status"] == [2, 0]
    assert res["as_completed"] == 3
    assert res["futures"] == [2, 0]
    assert res["values"] == [1, 2]
    assert res["result"] == [1, True]
    assert res["sum"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_nested_references_resolve_to_their_own_value(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "nested_refs.py", qshpc_home, {"rounds": 3, "per_round": 6})
    assert res["wrong"] == []
    assert res["hits"] == 3 * 6 * 2
    assert res["looked"] == ["table-0", "table-7", "table-49"]


@pytest.mark.parametrize("mode", MODES)
def test_unresolvable_reference_is_refused_clearly(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "nested_refused.py", qshpc_home)
    for key in ("get", "call"):
        assert "placed by a task on rank" in res[key], res
        assert "return the object itself" in res[key], res


@pytest.mark.parametrize("mode", MODES)
def test_task_error_is_an_instance_of_the_original_class(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "task_errors.py", qshpc_home)
    assert res["value"] == {
        "task_error": True,
        "fields": [res["value"]["fields"][0], "bad", True, True],
        "traceback": True,
        "message": True,
    }
    assert res["key"] == "missing"
    assert res["program"] == [7, True]
    assert res["os"] == [2, "/nowhere"]
    assert res["final"] == "Final"
    assert res["nested"] is True
    assert res["list"] is True
    assert res["result"] is True


@pytest.mark.parametrize("mode", MODES)
def test_task_refs_are_futures(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "futures.py", qshpc_home)
    assert res["is_future"] is True
    assert res["cf_wait"] == [8, 0]
    assert res["cf_as_completed"] == [i * i for i in range(8)]
    assert res["first_completed"] is True
    assert res["qshpc_as_completed"] == [i * i for i in range(6)]
    assert "1 of 1 tasks not done after 0.2 s" in res["timeout"]
    assert res["callback"] == [81]
    assert res["asyncio"] == [16, 25, [0, 1, 4]]


@pytest.mark.parametrize("mode", MODES)
def test_cpu_target_means_threads_and_is_refused_when_no_rank_has_them(
    mode: str, qshpc_home: Path
) -> None:
    res = run_program(mode, "target_cpu.py", qshpc_home, {"big": 64})
    cpus, threads, rank = res["one"]
    assert (cpus, threads) == (1, 1) and rank in (1, 2)
    task_cpus, rank_cpus = res["default"]
    assert task_cpus == rank_cpus
    assert "cpu=64" in res["refused"], res["refused"]
    assert re.search(r"\(ranks 1-2: \d+ each\)", res["refused"]), res["refused"]
    assert "LocalClient(workers=N)" in res["refused"], res["refused"]


# Placement on ranks of unequal cores: tests/unit/test_parity_runtime.py (loopback ranks).
