"""review13: findings in what session 13 merged (lead13's ``qshpc submit --resume``...)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import run_cli

FAILS = """
from qshpc import distribute_task, get
@distribute_task()
def sq(i):
    return i * i
print(get([sq(i) for i in range(3)]))
raise RuntimeError("boom")
"""


def test_a_resumed_job_that_fails_again_is_not_shown_queued_for_good(tmp_path: Path) -> None:
    from qshpc.client.job import open_job
    from qshpc.jobs.paths import RESUBMITTED_FILE

    prog = tmp_path / "fails.py"
    prog.write_text(FAILS)
    out = run_cli("run", str(prog), "--workers", "0", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    job = open_job(sorted((Path(str(tmp_path / "qshpc-home")) / "jobs").iterdir())[0].name)
    assert job.status() == "FAILED"
    # As `qshpc submit --resume` leaves it once sbatch took the new Slurm job (an id
    # that this host's Slurm, if any, does not know).
    marker = {"slurm_job_id": "987654321", "time": time.time()}
    (job.job_dir / RESUBMITTED_FILE).write_text(json.dumps(marker))
    assert job.status() == "QUEUED"  # waiting for the new run to start
    # The new run starts (here: a --resume on this host) and fails again.
    time.sleep(0.05)
    out = run_cli("run", str(prog), "--workers", "0", "--resume", job.job_id, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    # Was QUEUED for good on 7eea0c7 (the marker was compared with the FIRST run's
    # start): `qshpc wait` never returned, and `qshpc rm` / another --resume refused it.
    assert job.status() == "FAILED", job.info().get("sub_status")
    assert run_cli("wait", job.job_id, "--timeout", "5").returncode == 1


def test_submit_resume_of_a_local_job_names_a_command_that_works(tmp_path: Path) -> None:
    prog = tmp_path / "fails.py"
    prog.write_text(FAILS)
    assert run_cli("run", str(prog), "--workers", "0", cwd=tmp_path).returncode == 1
    job = sorted((tmp_path / "qshpc-home" / "jobs").iterdir())[0].name
    out = run_cli("submit", "--resume", job)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    # Was `qshpc run --resume JOB`: typer's "Missing argument 'program'".
    assert f"`qshpc run {prog} --resume {job}`" in out.stderr, out.stderr
    again = run_cli("run", str(prog), "--workers", "0", "--resume", job, cwd=tmp_path)
    assert again.returncode == 1 and "Missing argument" not in again.stderr


FORKS = """
import asyncio, os, threading
from qshpc.task.execute import AwaitedCall

async def plus_one(x):
    return x + 1

call = AwaitedCall(plus_one)

async def main():
    return call(1)  # under a running loop: on the pool's threads

assert asyncio.run(main()) == 2
pid = os.fork()
if pid == 0:
    t = threading.Thread(target=lambda: print("child", asyncio.run(main())), daemon=True)
    t.start()
    t.join(20)
    print("hung" if t.is_alive() else "ok", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_an_async_task_in_a_forked_child_does_not_hang(tmp_path: Path) -> None:
    # On 7eea0c7 the child took its parent's pool, whose threads it has not: the
    # call was queued and never ran (a multiprocessing 'fork' worker hung for good).
    import subprocess
    import sys

    prog = tmp_path / "forks.py"
    prog.write_text(FORKS)
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, str(prog)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": repo},
    )
    assert out.stdout.split() == ["child", "2", "ok"], out.stdout + out.stderr


DIES = """
import os, signal
from qshpc import distribute_task, get
@distribute_task()
def sq(i):
    return i * i
print(get([sq(i) for i in range(3)]))
os.kill(os.getpid(), signal.SIGKILL)  # the ranks die: the store keeps RUNNING
"""


def test_a_resumed_job_whose_last_run_died_is_queued_until_the_new_run_starts(
    tmp_path: Path,
) -> None:
    from qshpc.client.job import open_job
    from qshpc.jobs.paths import RESUBMITTED_FILE, SLURM_ID_FILE, STATUS_OVERRIDE
    from qshpc.store import JobReader

    prog = tmp_path / "dies.py"
    prog.write_text(DIES)
    out = run_cli("run", str(prog), "--workers", "0", cwd=tmp_path)
    assert out.returncode != 0
    job = open_job(sorted((tmp_path / "qshpc-home" / "jobs").iterdir())[0].name)
    with JobReader.open(job.job_dir) as r:
        assert r.meta()["state"] == "RUNNING"  # its end was never recorded
    assert job.status() == "FAILED"
    # What `qshpc submit --resume` leaves once sbatch took the new Slurm job: its id,
    # the marker, and no recorded end of the last run.
    (job.job_dir / SLURM_ID_FILE).write_text("987654321\n")
    (job.job_dir / STATUS_OVERRIDE).unlink(missing_ok=True)
    marker = {"slurm_job_id": "987654321", "time": time.time()}
    (job.job_dir / RESUBMITTED_FILE).write_text(json.dumps(marker))
    # Was RUNNING on af3d119 (the dead run's word; Slurm's PENDING does not override a
    # store RUNNING): the job waits in Slurm's queue.
    meta = job.info()
    assert meta["state"] == "QUEUED", meta
    assert "resumed as Slurm job 987654321" in str(meta.get("sub_status"))


def test_an_uploaded_function_is_found_by_its_provider_slash_title(tmp_path: Path) -> None:
    from qshpc import LocalClient, QiskitFunction

    (tmp_path / "fn.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    client = LocalClient(workers=0)
    client.upload(QiskitFunction(title="prov/fn", entrypoint="fn.py", working_dir=str(tmp_path)))
    # qiskit-serverless's client.get / client.function take "provider/title" (was None here)
    for found in (client.get("prov/fn"), client.function("prov/fn"), client.get("fn")):
        assert found is not None and found.title == "fn"
    assert client.get("other") is None


def test_submit_resume_refuses_a_job_slurm_shows_in_a_state_qshpc_does_not_know(
    tmp_path: Path,
) -> None:
    # A Slurm word qshpc does not know (one Slurm may add) is UNKNOWN: never taken for
    # ended. On af3d119 --resume went on (a second Slurm job for a job that may run).
    from qshpc.jobs.paths import SLURM_ID_FILE, STATUS_OVERRIDE

    prog = tmp_path / "dies.py"
    prog.write_text(DIES)
    assert run_cli("run", str(prog), "--workers", "0", cwd=tmp_path).returncode != 0
    job_dir = sorted((tmp_path / "qshpc-home" / "jobs").iterdir())[0]
    (job_dir / SLURM_ID_FILE).write_text("987654321\n")
    (job_dir / STATUS_OVERRIDE).unlink(missing_ok=True)
    bin_dir = tmp_path / "bin"  # Slurm that answers with a new word (the fault injected)
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho '987654321|NEW_WORD|0:0|None'\n")
    for name in ("squeue", "scontrol"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    status = run_cli("status", job_dir.name, "--json", env=env)
    assert json.loads(status.stdout)["state"] == "UNKNOWN", status.stdout + status.stderr
    out = run_cli("submit", "--resume", job_dir.name, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"job {job_dir.name} is UNKNOWN (Slurm job 987654321): wait" in out.stderr
