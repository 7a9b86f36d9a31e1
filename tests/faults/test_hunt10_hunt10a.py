"""Session 10's hunt (hunt10a): quantum-serverless 0.10.1 parity, against its own code and docs.

Each test says what happened on main 0ab3ff4 and what quantum-serverless 0.10.1 did
(its sources at tag v0.10.1 of Qiskit/qiskit-serverless, ``client/quantum_serverless``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qshpc import LocalClient, Program, open_job
from tests.conftest import job_dir_of, run_cli

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
