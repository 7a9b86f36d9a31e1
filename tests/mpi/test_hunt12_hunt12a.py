"""Session 12, hunt12a: researcher programs on worker ranks (mpiexec)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc import LocalClient, Program, open_job
from tests.conftest import run_cli

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


SEEDED = """
import numpy as np
from qiskit import QuantumCircuit

import qshpc
from qshpc import distribute_task, get, save_result
from qshpc.aer import SamplerV2

qc = QuantumCircuit(3)
qc.h(range(3))
qc.measure_all()


@distribute_task()
def sample(i):
    result = SamplerV2().run([(qc, None, 50)]).result()   # no seed: the task's
    return qshpc.current_task().seed, result.metadata["seed"], result[0].data.meas.array.tolist()


first = SamplerV2().run([(qc, np.zeros((6, 0)), 20)]).result()   # blocks on 2+ ranks only
save_result({"tasks": get([sample(i) for i in range(3)]), "first": first.metadata["seed"]})
"""


def test_a_primitive_run_before_the_tasks_leaves_their_seeds_as_they_are(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """A top-level SamplerV2 run sends blocks as tasks on 2+ ranks and runs them in place on
    one: the blocks took task ids 0.., so the program's later calls got other ids, so other
    seeds, and other counts (`--seed 9`: task 0's sampler seed 8909999558780403228 under
    `mpiexec -n 1`, 3392452614456114504 under `-n 3`, which -n 1 gave task 1). The blocks
    now count apart (`p0`, `p1`...): the same seeds and counts on 1, 2 and 3 ranks."""
    (tmp_path / "seeded.py").write_text(SEEDED)
    results = []
    for ranks in (1, 2, 3):
        job_dir = tmp_path / f"job{ranks}"
        out = run_cli(
            "run",
            str(tmp_path / "seeded.py"),
            "--seed",
            "9",
            "--job-dir",
            str(job_dir),
            ranks=ranks,
        )
        assert out.returncode == 0, out.stderr
        results.append(open_job(str(job_dir)).result())
        ids = {t["task_id"] for t in open_job(str(job_dir)).tasks()}
        assert {"0", "1", "2"} <= ids and not (ids - {"0", "1", "2"}) - {f"p{i}" for i in range(9)}
    assert results[0] == results[1] == results[2]


CALLBACKS = """
import os
import tempfile
import threading
import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def sq(x):
    return x * x


@distribute_task()
def held(x, gate):  # ends once the callbacks are on (a done ref runs one at once, here)
    while not os.path.exists(gate):
        time.sleep(0.01)
    return x * x


seen, follow, done, submitted = [], [], threading.Event(), threading.Event()


def waits(fut):
    try:
        seen.append(get(sq(fut.result()), timeout=20))
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
    try:
        seen.append(sq(fut.result() + 2).result(timeout=20))
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
    done.set()


def submits(fut):
    follow.append(sq(fut.result() + 1))
    submitted.set()


gate = os.path.join(tempfile.mkdtemp(), "gate")
first = held(3, gate)
first.add_done_callback(waits)
second = held(4, gate)
second.add_done_callback(submits)
open(gate, "w").close()
get([first, second])
done.wait(60)
submitted.wait(60)  # callbacks run after get's waiters are woken: follow may be empty yet
save_result({"seen": seen, "follow": get(follow, timeout=60)})
"""


def test_get_in_a_done_callback_is_refused_instead_of_waiting_forever(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """Done-callbacks run on rank 0's dispatcher thread: a `get` there for a new call waited
    forever (`TimeoutError: 1 of 1 tasks not done after 20 s` with a timeout), since that
    thread sends the calls. Now one clear UserError; submitting from a callback still works."""
    (tmp_path / "callbacks.py").write_text(CALLBACKS)
    program = Program(title="cb", entrypoint="callbacks.py", working_dir=str(tmp_path))
    result = LocalClient(workers=1).run(program).result(timeout=120)
    assert result["follow"] == [289]
    first, second = result["seen"]
    assert first.startswith("UserError: get was called in a done-callback")
    assert second.startswith("UserError: ref.result() was called in a done-callback")
    assert "wait for them in the program" in first


ASYNC_TASKS = """
import asyncio

from qshpc import distribute_task, get, save_result


@distribute_task(target={"env_vars": {"WHERE": "worker"}})
async def fetch(x):
    import os

    await asyncio.sleep(0.01)
    return x + 1, os.environ.get("WHERE")


save_result(get([fetch(i) for i in range(3)]))
"""


def test_an_async_task_runs_on_a_worker(qshpc_home: Path, tmp_path: Path) -> None:
    """It failed there: `SerializationError: ... cannot pickle 'coroutine' object`."""
    (tmp_path / "async_tasks.py").write_text(ASYNC_TASKS)
    program = Program(title="async", entrypoint="async_tasks.py", working_dir=str(tmp_path))
    result = LocalClient(workers=1).run(program).result(timeout=120)
    assert result == [(1, "worker"), (2, "worker"), (3, "worker")]
