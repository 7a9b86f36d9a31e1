"""review31's HIGH findings, on real jobs: what ranks forked from one server draw at random,
and task functions first called from several threads at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_program

pytestmark = pytest.mark.mpi

#: Rank 0 and every task make a Parameter; a circuit holds rank 0's and a task's (F1).
PARAMETERS = """\
import os
from qiskit.circuit import Parameter, QuantumCircuit
from qshpc import distribute_task, get, save_result

theta = Parameter("theta")

@distribute_task()
def layer(i):
    import time
    time.sleep(0.05)  # (every worker gets some)
    x = Parameter("x")
    qc = QuantumCircuit(1)
    qc.rx(x, 0)
    return str(x.uuid), os.getpid(), qc

out = get([layer(i) for i in range(6)])
both = QuantumCircuit(1)
both.ry(theta, 0)
both.compose(out[0][2], inplace=True)
save_result({
    "mine": str(theta.uuid),
    "theirs": [u for u, _, _ in out],
    "pids": sorted({p for _, p, _ in out}),
    "parameters": [p.name for p in both.parameters],
})
"""

#: Threads of rank 0 make the first calls of many task functions at once (F2).
THREADS = """\
import threading
from concurrent.futures import ThreadPoolExecutor
from qshpc import distribute_task, get, save_result

@distribute_task()
def a(x):
    return ("a", x)

@distribute_task()
def b(x):
    return ("b", x)

N = 8
barrier = threading.Barrier(N)

def first_calls(k):
    barrier.wait()
    return get(a(k)), get(b(k))

with ThreadPoolExecutor(N) as pool:
    got = list(pool.map(first_calls, range(N)))
save_result(got)
"""


@pytest.mark.parametrize("ranks", [None, 3])
def test_parameters_made_on_forked_ranks_differ(
    tmp_path: Path, qshpc_home: Path, ranks: int | None
) -> None:
    """Forked ranks drew the fork server's random numbers: a task's first Parameter had rank
    0's UUID, and a circuit holding both had one parameter (review31 F1)."""
    args = () if ranks else ("--workers", "2")
    job = run_program(qshpc_home, tmp_path / "params.py", PARAMETERS, *args, ranks=ranks)
    res = job.result()
    assert len(res["pids"]) == 2, res  # both workers ran some
    uuids = [res["mine"], *res["theirs"]]
    assert len(set(uuids)) == len(uuids), uuids
    assert res["parameters"] == ["theta", "x"]


def test_task_functions_first_called_from_threads_at_once(tmp_path: Path, qshpc_home: Path) -> None:
    """Threads registering one function at once numbered it twice, and the next function
    took one of its numbers: calls of one ran the other's code, and the job SUCCEEDED
    with wrong values (review31 F2)."""
    for _ in range(3):
        job = run_program(qshpc_home, tmp_path / "threads.py", THREADS, "--workers", "2")
        assert job.result() == [(("a", k), ("b", k)) for k in range(8)]


def test_a_preload_module_that_exits_at_import_leaves_the_run_whole(tmp_path: Path) -> None:
    """review33 F1: a preloaded module's own sys.exit at import (a helper that parses the
    command line) killed the fork server's loading thread; the next preload waited on it
    for good, the workers were never forked and the run hung (SIGTERM did not end it)."""
    from tests.conftest import job_dir_of, run_cli

    (tmp_path / "exitmod.py").write_text('import sys\nsys.exit("exitmod refuses")\n')
    prog = tmp_path / "simple.py"
    prog.write_text(
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef sq(x):\n    return x * x\n"
        "save_result(get([sq(i) for i in range(6)]))\n"
    )
    out = run_cli(
        "run", str(prog), "--workers", "2", cwd=tmp_path, timeout=120,
        env={"QSHPC_PRELOAD": "exitmod,qiskit_aer"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    from qshpc import open_job

    home = Path(os.environ["QSHPC_HOME"])
    assert open_job(job_dir_of(home)).result() == [i * i for i in range(6)]
