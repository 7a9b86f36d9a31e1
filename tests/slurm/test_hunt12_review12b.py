"""Session 12, review12b: a lock's Slurm takeover check asks about the holder's cluster only."""

from __future__ import annotations

import time

import pytest

from tests.slurm.conftest import run

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(120)]


def test_an_ended_job_of_another_cluster_is_not_over_here(slurm_env: dict[str, str]) -> None:
    """Job ids are per cluster, and sacct asks the cluster it runs on. A lock held by a
    live run on cluster A (a file system shared with cluster B) was taken over by a
    `--resume` on B as soon as B's job of the same id had ended (on 9a3ab0b+640adfa):
    two writers of one store. The holder now records its cluster (SLURM_CLUSTER_NAME)."""
    from qshpc.submit.slurm import job_over

    config = run(["scontrol", "show", "config"]).stdout
    name = next(
        line.split("=", 1)[1].strip() for line in config.splitlines() if "ClusterName" in line
    )
    out = run(["sbatch", "--parsable", "-t", "1", "--wrap", "true"])
    assert out.returncode == 0, out.stderr
    slurm_id = out.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 90
    while not job_over(slurm_id) and time.monotonic() < deadline:
        time.sleep(1)
    assert job_over(slurm_id) and job_over(slurm_id, name)  # this cluster's: over
    assert not job_over(slurm_id, name + "-other")  # the same id on another cluster


def test_a_lock_names_its_slurm_cluster(tmp_path: object) -> None:
    from pathlib import Path

    from qshpc.store.lock import JobLock, read_holder

    job = Path(str(tmp_path)) / "job"
    job.mkdir()
    batch = {"SLURM_JOB_ID": "7", "SLURM_CLUSTER_NAME": "alpha"}
    lock = JobLock(job, "qshpc run", batch).acquire()
    try:
        holder = read_holder(job)
        assert holder is not None and holder.slurm_cluster == "alpha"
    finally:
        lock.release()
