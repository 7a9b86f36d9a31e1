"""Slurm's one module (qshpc.submit.slurm): batched queries, UNKNOWN states, the task environment.

The Slurm commands here are fakes on PATH that log their arguments (a real
cluster answers in tests/slurm); what is tested is how often qshpc asks and
what it makes of the answers.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from qshpc.store import create_job
from qshpc.submit import slurm
from qshpc.submit.slurm_states import SlurmView
from tests.conftest import run_cli


def fake_slurm(bindir: Path, log: Path, answers: dict[str, str]) -> None:
    """Put fake ``sacct``/``squeue``/``scontrol`` on ``bindir``: each logs its argv, prints its answer."""
    bindir.mkdir(exist_ok=True)
    for cmd in ("sacct", "squeue", "scontrol", "sinfo", "scancel"):
        script = bindir / cmd
        text = answers.get(cmd, "")
        script.write_text(f'#!/bin/sh\necho "{cmd} $*" >> "{log}"\ncat <<\'EOT\'\n{text}EOT\n')
        script.chmod(0o755)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.is_file() else []


def test_query_many_asks_sacct_once(fake: tuple[Path, Path]) -> None:
    bindir, log = fake
    fake_slurm(
        bindir,
        log,
        {
            "sacct": "11|RUNNING|0:0|None\n12|COMPLETED|0:0|None\n13_[0-5%2]|PENDING|0:0|Priority\n",
            "squeue": "14|CONFIGURING|None\n",
        },
    )
    views = slurm.query_many(["11", "12", "13_2", "14", "15", "not-an-id"])
    assert views["11"] == SlurmView("RUNNING", "0:0", "None", "sacct")
    assert views["12"] is not None and views["12"].state == "SUCCEEDED"
    assert views["13_2"] is not None and views["13_2"].state == "QUEUED"  # the pending array's line
    assert views["14"] == SlurmView("CONFIGURING", "", "None", "squeue")
    assert views["15"] is None and "not-an-id" not in views
    made = calls(log)
    assert [c.split()[0] for c in made] == ["sacct", "squeue", "scontrol"]
    # squeue: every job sacct has no row for or calls queued (its live answer wins, review32
    # F8); not one sacct calls RUNNING (review33 F6: 2 RPCs a poll of a running job)
    assert "-j 11,12,13_2,14,15" in made[0] and "-j 13_2,14,15 " in made[1]
    assert made[2].endswith("15")


def test_query_many_of_nothing_asks_nobody(fake: tuple[Path, Path]) -> None:
    bindir, log = fake
    fake_slurm(bindir, log, {})
    assert slurm.query_many([]) == {}
    assert calls(log) == []


def slurm_job(home: Path, name: str, slurm_id: str, state: str = "QUEUED") -> Path:
    d = home / "jobs" / name
    create_job(d, {"id": name, "title": name, "created": time.time()}, {})
    (d / "slurm_job_id").write_text(slurm_id + "\n")
    return d


def test_list_asks_slurm_once_for_every_job(fake: tuple[Path, Path], qshpc_home: Path) -> None:
    bindir, log = fake
    fake_slurm(
        bindir, log, {"sacct": "21|RUNNING|0:0|None\n22|PENDING|0:0|None\n23|RUNNING|0:0|None\n"}
    )
    for i in (1, 2, 3):
        slurm_job(qshpc_home, f"20260101-00000{i}-aaaaaa", f"2{i}")
    out = run_cli("list", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("RUNNING") == 2 and out.stdout.count("QUEUED") == 1
    # one sacct, and one squeue for the jobs it calls queued (review32 F8), for all the jobs
    made = calls(log)
    assert [c.split()[0] for c in made] == ["sacct", "squeue"] and "-j 22 " in made[1]
    log.unlink()
    out = run_cli("list", "--state", "RUNNING", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0 and out.stdout.count("RUNNING") == 2
    assert [c.split()[0] for c in calls(log)] == ["sacct", "squeue"]
    log.unlink()  # only running jobs: sacct alone (review33 F6)
    fake_slurm(
        bindir, log, {"sacct": "21|RUNNING|0:0|None\n22|RUNNING|0:0|None\n23|RUNNING|0:0|None\n"}
    )
    out = run_cli("list", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0 and out.stdout.count("RUNNING") == 3
    assert [c.split()[0] for c in calls(log)] == ["sacct"]


def test_an_unknown_slurm_state_is_unknown_with_a_warning(
    fake: tuple[Path, Path], qshpc_home: Path
) -> None:
    bindir, log = fake
    fake_slurm(bindir, log, {"sacct": "31|HIBERNATING|0:0|None\n"})
    slurm_job(qshpc_home, "20260101-000001-bbbbbb", "31")
    out = run_cli("status", "31", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "UNKNOWN (slurm: HIBERNATING)"
    assert "qshpc: warning:" in out.stderr and "HIBERNATING" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli("list", "--state", "unknown", env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0 and "UNKNOWN" in out.stdout


def test_task_env_reads_slurm_variables() -> None:
    assert slurm.task_env({}) is None
    env = slurm.task_env(
        {
            "SLURM_JOB_ID": "7",
            "SLURM_ARRAY_JOB_ID": "5",
            "SLURM_ARRAY_TASK_ID": "2",
            "SLURM_PROCID": "3",
            "SLURM_LOCALID": "1",
            "SLURM_NTASKS": "4",
            "SLURM_RESTART_COUNT": "2",
            "SLURM_CPUS_PER_TASK": "8",
        }
    )
    assert env is not None and env.element_id == "5_2"
    assert (env.procid, env.localid, env.ntasks, env.restart_count, env.cpus_per_task) == (
        3,
        1,
        4,
        2,
        8,
    )
    assert slurm.task_env({"SLURM_JOB_ID": "7", "SLURM_PROCID": "x"}) == slurm.TaskEnv("7")
    assert slurm.run_record({"SLURM_JOB_ID": "7", "SLURM_LOCALID": "0", "HOME": "/"}) == {
        "SLURM_JOB_ID": "7"
    }


def test_scheduler_turns_signals_into_requeues(
    fake: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir, log = fake
    fake_slurm(bindir, log, {"scontrol": "JobId=7 Restarts=1 BatchFlag=1\n"})
    sched = slurm.SlurmScheduler(slurm.TaskEnv("7", restart_count=0, cpus_per_task=4))
    assert sched.cpus_per_task() == 4
    monkeypatch.delenv("QSHPC_REQUEUE", raising=False)
    assert sched.requeue_reason(signal.SIGUSR2) is None  # not submitted with --requeue
    monkeypatch.setenv("QSHPC_REQUEUE", "1")
    near = sched.requeue_reason(signal.SIGUSR2)
    assert near is not None and near.ask_scheduler
    done = sched.requeue_reason(signal.SIGTERM)  # Slurm's restart count grew: Slurm requeued it
    assert done is not None and not done.ask_scheduler
    assert sched.requeue() is None and calls(log)[-1] == "scontrol requeue 7"
    assert (
        slurm.SlurmScheduler(slurm.TaskEnv("7", restart_count=1)).requeue_reason(signal.SIGTERM)
        is None
    )


def test_only_the_slurm_module_reads_slurm_variables_and_runs_slurm_commands() -> None:
    root = Path(__file__).resolve().parents[2] / "qshpc"
    reads = re.compile(r"""environ(?:\.get)?\s*[\(\[]\s*["']SLURM_""")
    runs = re.compile(r"""\[\s*["'](?:sacct|squeue|scontrol|scancel|sinfo|sbatch|srun)["']""")
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p != root / "submit" / "slurm.py"
        and (reads.search(p.read_text()) or runs.search(p.read_text()))
    ]
    assert not offenders


def test_ranks_of_the_pypi_mpich_use_libfabric_under_slurm_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wheel's ch4:ucx address exchange through Slurm's PMI2 breaks (mpich 5.0.2): ofi instead."""
    monkeypatch.setattr(slurm, "_pypi_mpich", lambda: True)
    sched = slurm.SlurmScheduler(slurm.TaskEnv("7"))
    # and libfabric's tcp provider: left to choose it took `sockets`, whose MPI_Init
    # hung ~1 run in 5 over 3 nodes x 2 (review32 F0)
    assert sched.mpi_env() == {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp"}
    step = slurm.SrunStep()
    assert step.env({"PATH": "/bin"})["MPIR_CVAR_CH4_NETMOD"] == "ofi"
    assert step.env({"PATH": "/bin"})["FI_PROVIDER"] == "tcp"
    # the user's own choice wins, in the step as in the ranks (run_rank uses setdefault)
    assert step.env({"MPIR_CVAR_CH4_NETMOD": "ucx"})["MPIR_CVAR_CH4_NETMOD"] == "ucx"
    assert step.env({"FI_PROVIDER": "sockets"})["FI_PROVIDER"] == "sockets"
    monkeypatch.setattr(slurm, "_pypi_mpich", lambda: False)  # a cluster's own MPI: left alone
    assert sched.mpi_env() == {} and "MPIR_CVAR_CH4_NETMOD" not in step.env({"PATH": "/bin"})
    assert "FI_PROVIDER" not in step.env({"PATH": "/bin"})


def test_the_pypi_mpich_is_recognised_here() -> None:
    from importlib import metadata

    try:
        metadata.distribution("mpich")
    except metadata.PackageNotFoundError:
        pytest.skip("no PyPI mpich here")
    from qshpc.runtime import mpi

    mpi.pypi_mpich.cache_clear()
    assert slurm._pypi_mpich() and mpi.pypi_mpich()
