"""The dev Slurm cluster does what qshpc relies on (slurm/devcluster.sh).

Needs a running cluster: ``make slurm-up`` (single node) for the ``slurm``
tests, ``make slurm-up NODES=3`` for the ``multinode`` ones.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.slurm.sbatch_util import sbatch, sh, wait_terminal

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "slurm" / "examples"


def has_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ single node


@pytest.mark.slurm
@pytest.mark.parametrize("partition", [None, "debug", "batch"])
def test_sbatch_completes_in_sacct(
    slurm_env: dict[str, str], tmp_path: Path, partition: str | None
) -> None:
    out_file = tmp_path / "out.txt"
    args = ["-o", str(out_file), "--wrap", "echo hello from $SLURM_JOB_PARTITION"]
    if partition:
        args = ["-p", partition, *args]
    job = sbatch(*args)
    assert wait_terminal(job) == "COMPLETED"
    text = out_file.read_text()
    assert "hello from" in text
    assert text.split()[-1] == (partition or "debug")


@pytest.mark.slurm
def test_failed_job_is_failed_in_sacct(slurm_env: dict[str, str], tmp_path: Path) -> None:
    job = sbatch("-o", str(tmp_path / "out.txt"), "--wrap", "exit 3")
    assert wait_terminal(job) == "FAILED"


@pytest.mark.slurm
def test_unknown_partition_is_rejected(slurm_env: dict[str, str]) -> None:
    out = sh(["sbatch", "-p", "no-such-partition", "--wrap", "true"])
    assert out.returncode != 0
    assert "invalid partition" in out.stderr.lower(), out.stderr


@pytest.mark.slurm
@pytest.mark.skipif(not has_mpi4py(), reason="mpi4py not installed")
def test_srun_pmi2_gives_one_comm_world(slurm_env: dict[str, str]) -> None:
    code = "from mpi4py import MPI; print(MPI.COMM_WORLD.Get_size())"
    out = sh(["srun", "--mpi=pmi2", "-n", "2", sys.executable, "-c", code], timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"], out.stdout + out.stderr


@pytest.mark.slurm
def test_cancel_shows_quickly(slurm_env: dict[str, str], tmp_path: Path) -> None:
    job = sbatch("-o", str(tmp_path / "out.txt"), "--wrap", "sleep 300")
    deadline = time.monotonic() + 30
    while sh(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.2)
    t0 = time.monotonic()
    assert sh(["scancel", job]).returncode == 0
    assert wait_terminal(job, timeout=30) == "CANCELLED"
    assert time.monotonic() - t0 < 15


def fake_python(tmp_path: Path) -> Path:
    """A stand-in for QSHPC_PYTHON that records how each rank was started."""
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$(hostname) $*" > "$(dirname "$0")/rank-$SLURM_PROCID.txt"\n'
        'echo "${CUDA_VISIBLE_DEVICES:-}" > "$(dirname "$0")/gpus-$SLURM_PROCID.txt"\n'
    )
    fake.chmod(0o755)
    return fake


def run_example(name: str, tmp_path: Path, *extra: str) -> list[str]:
    env = dict(os.environ)
    env.update(
        QSHPC_PYTHON=str(fake_python(tmp_path)),
        PROGRAM=str(tmp_path / "prog.py"),
        ARGS=str(tmp_path / "args.json"),
        JOB_DIR=str(tmp_path / "job"),
    )
    job = sbatch("-o", str(tmp_path / "slurm.out"), *extra, str(EXAMPLES / name), env=env)
    state = wait_terminal(job)
    log = (tmp_path / "slurm.out").read_text() if (tmp_path / "slurm.out").exists() else ""
    assert state == "COMPLETED", log
    ranks = sorted(tmp_path.glob("rank-*.txt"))
    expected = (
        f"-m qshpc run {tmp_path}/prog.py --arguments {tmp_path}/args.json --job-dir {tmp_path}/job"
    )
    lines = [r.read_text().strip() for r in ranks]
    for line in lines:
        assert line.split(" ", 1)[1] == expected, line
    return lines


@pytest.mark.slurm
def test_example_cpu_script(slurm_env: dict[str, str], tmp_path: Path) -> None:
    lines = run_example("run_cpu.sbatch", tmp_path)
    assert len(lines) == 2


@pytest.mark.slurm
def test_example_gpu_script(slurm_env: dict[str, str], tmp_path: Path) -> None:
    gres = sh(["sinfo", "-h", "-o", "%G"]).stdout
    match = re.search(r"gpu:(?:[^:,\s]+:)?(\d+)", gres)
    if not match:
        pytest.skip("the cluster declares no GPUs (gres)")
    n = min(2, int(match.group(1)))
    lines = run_example(
        "run_gpu.sbatch",
        tmp_path,
        f"--gpus-per-node={n}",
        f"--ntasks-per-node={n}",
        "--cpus-per-task=1",
    )
    assert len(lines) == n
    # every rank sees all of the node's GPUs; qshpc picks one by local rank
    seen = {(tmp_path / f"gpus-{r}.txt").read_text().strip() for r in range(n)}
    assert len(seen) == 1 and len(seen.pop().split(",")) == n


# ------------------------------------------------------------------ multi node


@pytest.mark.multinode
def test_srun_two_nodes_distinct_hostnames(multinode_env: dict[str, str]) -> None:
    out = sh(["srun", "-N2", "-n2", "hostname"], timeout=60)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert len(names) == 2 and len(set(names)) == 2, out.stdout
    assert set(names) <= {"n1", "n2", "n3"}


@pytest.mark.multinode
@pytest.mark.skipif(not has_mpi4py(), reason="mpi4py not installed")
def test_mpi_across_nodes(multinode_env: dict[str, str]) -> None:
    code = (
        "from mpi4py import MPI; import socket; c = MPI.COMM_WORLD; "
        "names = c.allgather(socket.gethostname()); "
        "print(c.Get_size(), len(set(names)))"
    )
    out = sh(["srun", "-N2", "-n2", "--mpi=pmi2", sys.executable, "-c", code], timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["2 2", "2 2"], out.stdout + out.stderr


@pytest.mark.multinode
def test_example_multinode_script(multinode_env: dict[str, str], tmp_path: Path) -> None:
    lines = run_example("run_multinode.sbatch", tmp_path)
    assert len(lines) == 4
    hosts = [ln.split()[0] for ln in lines]
    assert sorted(set(hosts)) == sorted({h for h in hosts}) and len(set(hosts)) == 2
