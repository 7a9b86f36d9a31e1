"""quantum-serverless parity (issue 14), from the user's side: one program per point.

Each program runs twice: through ``LocalClient(workers=2)`` (the notebook way)
and under ``mpiexec -n 3 python -m qshpc run`` (the batch way). Both have two
worker ranks, so tasks cross ranks and nested calls run on a worker. To keep the
suite cheap, the point programs run one after the other in one job per way
(``all_points.py`` runs each as its own ``__main__``); each test reads its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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
        return job.result(timeout=300)
    argv: list[str] = []
    if arguments:
        args = home.parent / f"args-{name}.json"
        args.write_text(json.dumps(arguments))
        argv = ["--arguments", str(args)]
    out = run_cli("run", str(PARITY / name), *argv, ranks=3, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return open_job(job_dir_of(home)).result()


@pytest.fixture(scope="module", params=MODES)
def points(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Every point program's saved result, from one job run the way the param says."""
    home = tmp_path_factory.mktemp(request.param) / "qshpc-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QSHPC_HOME", str(home))
        yield run_program(request.param, "all_points.py", home)


def point(points: dict[str, Any], name: str) -> Any:
    """The result ``name`` saved; its traceback as the failure when it raised."""
    res = points[name]
    if isinstance(res, dict) and set(res) == {"error"}:
        pytest.fail(f"{name} raised:\n{res['error']}")
    return res


def test_get_refs_by_status_polls_one_at_a_time(points: dict[str, Any]) -> None:
    res = point(points, "refs_by_status.py")
    assert res["steps"] == [1] * 6
    assert res["results"] == [i * i for i in range(6)]
    assert (res["ready"], res["not_ready"]) == (6, 0)
    assert (res["objs"], res["rest"]) == (2, 0)


def test_wait_returns_exactly_num_returns_in_input_order(points: dict[str, Any]) -> None:
    res = point(points, "wait_exact.py")
    assert res["exact"] == {"done": True, "pending": True}
    assert res["counts"] == [2, 2, 1]
    assert res["timeout0"] == [0, 1]
    assert res["waited0"] < 1.0  # timeout=0 looks once and returns
    assert res["mixed"] == [True, True]
    assert res["timed_out"] == [True, True]
    assert res["both"] == [2, 0]


def test_object_refs_are_ready(points: dict[str, Any]) -> None:
    res = point(points, "objectref_ready.py")
    assert res["wait"] == [2, 0]
    assert res["by_status"] == [2, 0]
    assert res["as_completed"] == 3
    assert res["futures"] == [2, 0]
    assert res["values"] == [1, 2]
    assert res["result"] == [1, True]
    assert res["sum"] == 3


def test_nested_references_resolve_to_their_own_value(points: dict[str, Any]) -> None:
    res = point(points, "nested_refs.py")
    assert res["wrong"] == []
    assert res["hits"] == 3 * 6 * 2
    assert res["looked"] == ["table-0", "table-7", "table-49"]


def test_unresolvable_reference_is_refused_clearly(points: dict[str, Any]) -> None:
    res = point(points, "nested_refused.py")
    for key in ("get", "call"):
        assert "placed by a task on rank" in res[key], res
        assert "return the object itself" in res[key], res


def test_task_error_is_an_instance_of_the_original_class(points: dict[str, Any]) -> None:
    res = point(points, "task_errors.py")
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


def test_task_refs_are_futures(points: dict[str, Any]) -> None:
    res = point(points, "futures.py")
    assert res["is_future"] is True
    assert res["cf_wait"] == [8, 0]
    assert res["cf_as_completed"] == [i * i for i in range(8)]
    assert res["first_completed"] is True
    assert res["qshpc_as_completed"] == [i * i for i in range(6)]
    assert "1 of 1 tasks not done after 0.2 s" in res["timeout"]
    assert res["callback"] == [81]
    assert res["asyncio"] == [16, 25, [0, 1, 4]]


def test_cpu_target_means_threads_and_is_refused_when_no_rank_has_them(
    points: dict[str, Any],
) -> None:
    res = point(points, "target_cpu.py")
    cpus, threads, rank = res["one"]
    assert (cpus, threads) == (1, 1) and rank in (1, 2)
    task_cpus, rank_cpus = res["default"]
    assert task_cpus == rank_cpus
    assert "cpu=64" in res["refused"], res["refused"]
    assert re.search(r"\(ranks 1-2: \d+ each\)", res["refused"]), res["refused"]
    # what helps on one machine: fewer workers, or nothing when it has fewer cores (review28 F10)
    assert "LocalClient(workers=N)" in res["refused"] or "this machine has" in res["refused"]


# Placement on ranks of unequal cores: tests/unit/test_parity_runtime.py (loopback ranks).
