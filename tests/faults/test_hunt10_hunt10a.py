"""Session 10's hunt (hunt10a): quantum-serverless 0.10.1 parity, against its own code and docs.

Each test says what happened on main 0ab3ff4 and what quantum-serverless 0.10.1 did
(its sources at tag v0.10.1 of Qiskit/qiskit-serverless, ``client/quantum_serverless``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qshpc import LocalClient, Program, open_job
from tests.conftest import job_dir_of, run_cli, run_program

pytestmark = [pytest.mark.timeout(240)]

ARGS_IN_TASK = """\
from qshpc import distribute_task, get, get_arguments, save_result

@distribute_task()
def scaled(i):
    # quantum-serverless 0.10.1's get_arguments read an environment variable
    # that Ray gave every worker of the job: a task saw the job's arguments too
    return get_arguments().get("scale", 1) * i

save_result({"program": get_arguments(), "tasks": get([scaled(i) for i in range(4)])})
"""


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["mpiexec_3", "local_client", "workers_0"])
def test_get_arguments_inside_a_task_on_a_worker(
    mode: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """On 0ab3ff4 a task on a worker rank got {} from get_arguments() (silently: the
    defaults were used), while the same task run inline (--workers 0, plain python)
    got the job's arguments. Now every rank gets the job's arguments."""
    prog = tmp_path / "args_in_task.py"
    prog.write_text(ARGS_IN_TASK)
    arguments = {"scale": 10}
    if mode == "local_client":
        job = LocalClient(workers=2).run(
            Program(title="a", entrypoint=prog.name, working_dir=str(tmp_path)),
            arguments=arguments,
        )
        res = job.result(timeout=180)
    else:
        args = tmp_path / "args.json"
        args.write_text(json.dumps(arguments))
        extra = ["--workers", "0"] if mode == "workers_0" else []
        out = run_cli(
            "run", str(prog), "--arguments", str(args), *extra,
            ranks=3 if mode == "mpiexec_3" else None, timeout=180,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        res = open_job(job_dir_of(qshpc_home)).result()
    assert res == {"program": {"scale": 10}, "tasks": [0, 10, 20, 30]}


def test_get_jobs_status_in_quantum_serverless_words(qshpc_home: Path, tmp_path: Path) -> None:
    """On 0ab3ff4 ``get_jobs(status="ERROR")`` (the word ``job.status()`` of a
    QuantumServerless job says) and ``status="DONE"`` returned [] although such jobs
    existed, and ``status="bogus"`` returned [] too. Now both spellings find the
    jobs and an unknown state is refused naming the valid ones."""
    from qshpc import QuantumServerless
    from qshpc.errors import UserError

    (tmp_path / "ok.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    (tmp_path / "bad.py").write_text("raise ValueError('boom')\n")
    serverless = QuantumServerless(LocalClient(workers=0))
    ok = serverless.run(Program(title="ok", entrypoint="ok.py", working_dir=str(tmp_path)))
    bad = serverless.run(Program(title="bad", entrypoint="bad.py", working_dir=str(tmp_path)))
    ok.wait(timeout=120)
    bad.wait(timeout=120)
    assert bad.status() == "ERROR" and ok.status() == "DONE"
    for word in ("ERROR", "FAILED", "error"):
        assert [j.job_id for j in serverless.get_jobs(status=word)] == [bad.job_id], word
    for word in ("DONE", "SUCCEEDED"):
        assert [j.job_id for j in serverless.get_jobs(status=word)] == [ok.job_id], word
    with pytest.raises(UserError, match=r"unknown state 'bogus'.*SUCCEEDED \(DONE\)"):
        serverless.get_jobs(status="bogus")


def test_jobs_made_in_one_second_list_newest_first(qshpc_home: Path, tmp_path: Path) -> None:
    """quantum-serverless's notebook 05 runs job1 and job2 back to back, then
    ``get_jobs(limit=2, offset=1)``. On 0ab3ff4 job ids made in the same second
    sorted by their random part, so 'newest first' put job1 before job2 in 3 runs
    of 6. Now the ids one process makes sort in the order it made them."""
    import re

    from qshpc import QuantumServerless
    from qshpc.jobs.paths import new_job_id

    ids = [new_job_id() for _ in range(300)]  # several seconds' worth: all in order
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)

    (tmp_path / "p.py").write_text("print('hi')\n")
    serverless = QuantumServerless(LocalClient(workers=0))
    program = Program(title="p", entrypoint="p.py", working_dir=str(tmp_path))
    jobs = [serverless.run(program) for _ in range(4)]
    for job in jobs:
        job.wait(timeout=120)
    made = [j.job_id for j in jobs]
    assert [j.job_id for j in serverless.get_jobs()] == made[::-1]
    assert [j.job_id for j in serverless.get_jobs(limit=2, offset=1)] == made[2:0:-1]


def test_run_a_pattern_without_entrypoint_runs_the_uploaded_one(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """quantum-serverless 0.10.1's ``run(QiskitPattern(title=...))`` with no
    entrypoint (what its ``get_programs()`` returned) ran the uploaded program of
    that title (``run_existing``). On 0ab3ff4: ``UserError: program 'p' has no
    entrypoint``. Now it runs the uploaded one; a title never uploaded is refused."""
    from qshpc import QiskitPattern, QuantumServerless
    from qshpc.errors import UserError

    (tmp_path / "p.py").write_text(
        "from qshpc import get_arguments, save_result\nsave_result(get_arguments())\n"
    )
    serverless = QuantumServerless(LocalClient(workers=0))
    serverless.upload(QiskitPattern(title="p", entrypoint="p.py", working_dir=str(tmp_path)))
    job = serverless.run(QiskitPattern(title="p"), arguments={"n": 3})
    assert job.result(timeout=120) == {"n": 3}
    with pytest.raises(UserError, match=r"no program titled 'q' was uploaded.*an entrypoint"):
        serverless.run(QiskitPattern(title="q"))


BAD_CALL = """\
import functools
from qshpc import distribute_task, get, save_result

@distribute_task(retries=2)
def f(x, *, scale=1):
    return x * scale

def loose(func):
    @functools.wraps(func)
    def wrapper(*args, verbose=False, **kwargs):  # takes more than func shows
        return func(*args, **kwargs)
    return wrapper

@distribute_task()
@loose
def g(x):
    return x

out = {}
for label, call in [("extra", lambda: f(1, 2)), ("kw", lambda: f(1, scal=2)),
                    ("missing", lambda: f())]:
    try:
        call()
        out[label] = "no error at the call"
    except TypeError as exc:
        out[label] = str(exc)
out["ok"] = get([f(2), f(2, scale=3), f(x=1), g(4, verbose=True)])
save_result(out)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [None, 3])
def test_a_call_that_does_not_fit_the_signature_fails_at_the_call(
    ranks: int | None, qshpc_home: Path, tmp_path: Path
) -> None:
    """Ray (so quantum-serverless 0.10.1) binds a remote call's arguments to the
    function's signature at the call: ``f(1, 2)`` raises TypeError there. On
    0ab3ff4 the call was queued, failed on the worker, and was retried (3
    failed attempts with retries=2) before get raised. Now the call raises
    TypeError at once, naming the task; wrappers that take more than they show
    (functools.wraps) are not second-guessed."""
    extra = [] if ranks else ["--workers", "0"]
    prog = tmp_path / "bad_call.py"
    res = run_program(qshpc_home, prog, BAD_CALL, *extra, ranks=ranks, timeout=180).result()
    assert res["ok"] == [2, 6, 1, 4]
    assert res["extra"].startswith("task f called with arguments that do not fit f(x, *, scale=1)")
    assert "too many positional arguments" in res["extra"]
    assert "unexpected keyword argument 'scal'" in res["kw"]
    assert "missing a required argument: 'x'" in res["missing"]


def test_target_positional_arguments_in_quantum_serverless_order() -> None:
    """quantum-serverless 0.10.1's ``Target(cpu, gpu, qpu, mem, resources, env_vars,
    pip)``. On 0ab3ff4 qshpc's order was (cpu, gpu, mem_gb, qpu, env_vars, pip, ...):
    ``Target(2, 0, 0, 4)`` (0.10.1: mem=4) asked for qpu=4 and no memory, and
    ``Target(1, 0, 0, 1, None, {"A": "1"})`` set pip to the env dict. Now the order is
    0.10.1's; ``mem_gb`` and ``ranks`` are keywords."""
    from qshpc import Target
    from qshpc.errors import ResourceError

    t = Target(2, 0, 0, 4)
    assert (t.cpu, t.gpu, t.qpu, t.mem_gb) == (2, 0, 0, 4.0)
    t = Target(1, 0, 0, 1, None, {"A": "1"}, ["numpy"])
    assert (t.env_vars, t.pip, t.mem) == ({"A": "1"}, ["numpy"], 1.0)
    assert Target(mem_gb=3) == Target(mem=3) == Target.from_dict({"mem": 3})
    assert Target(2, 1, mem=4.0) == Target.from_any({"cpu": 2, "gpu": 1, "mem": 4})
    with pytest.raises(ResourceError, match="mem=1 and mem_gb=2"):
        Target(mem=1, mem_gb=2)
    with pytest.raises(ResourceError, match="mem=1 and mem_gb=2"):  # a dict too (not: last wins)
        Target.from_any({"mem": 1, "mem_gb": 2})
    assert Target.from_any({"mem": 2, "mem_gb": 2.0}).mem_gb == 2.0


POP_ARGS = """\
from qshpc import distribute_task, get, get_arguments, save_result

@distribute_task()
def t(i):
    args = get_arguments()
    seen = sorted(args)
    args.pop("a", None)  # one call's change must not reach the next call on this rank
    return seen

first = get_arguments()
first.pop("a")
save_result({"again": sorted(get_arguments()), "tasks": get([t(i) for i in range(6)])})
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [None, 3])
def test_get_arguments_gives_a_fresh_dict_each_call(
    ranks: int | None, qshpc_home: Path, tmp_path: Path
) -> None:
    """quantum-serverless 0.10.1 decoded the arguments afresh at each
    get_arguments(). On 0ab3ff4 every call returned the one dict: a program (or
    a helper of it) that popped a key lost it for every later call. Now each call
    returns a new dict (its values are shared: a circuit is not copied)."""
    prog = tmp_path / "pop_args.py"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"a": 1, "b": 2}))
    extra = ["--arguments", str(args)] + ([] if ranks else ["--workers", "0"])
    res = run_program(qshpc_home, prog, POP_ARGS, *extra, ranks=ranks, timeout=180).result()
    assert res == {"again": ["a", "b"], "tasks": [["a", "b"]] * 6}


def test_get_jobs_limit_offset_and_job_id_of_the_wrong_kind(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On 0ab3ff4 ``get_jobs(offset=-1)`` returned the oldest job (a slice from the
    end), ``get_jobs(limit="a")`` raised a bare ValueError and
    ``get_job_by_id(None)`` a bare TypeError from os.fspath. Now each is one line
    naming the input."""
    from qshpc import QuantumServerless
    from qshpc.errors import UserError

    (tmp_path / "p.py").write_text("print('hi')\n")
    serverless = QuantumServerless(LocalClient(workers=0))
    job = serverless.run(Program(title="p", entrypoint="p.py", working_dir=str(tmp_path)))
    job.wait(timeout=120)
    assert [j.job_id for j in serverless.get_jobs(limit=5, offset=0)] == [job.job_id]
    assert serverless.get_jobs(limit=0) == [] and serverless.get_jobs(offset=1) == []
    for bad in ({"offset": -1}, {"limit": "a"}, {"limit": -2}, {"offset": 1.5}, {"limit": True}):
        with pytest.raises(UserError, match=f"get_jobs: {next(iter(bad))} must be"):
            serverless.get_jobs(**bad)
    with pytest.raises(UserError, match="a job id is a string, got NoneType"):
        serverless.get_job_by_id(None)  # type: ignore[arg-type]
