"""Session 24's fix34: what review34 found (main 9aef6f4 / 6f8af80).

F1: a run of an array element recorded its raw ``SLURM_JOB_ID`` as the lock holder's
Slurm job. Slurm gives the element with the highest index the array's own id as its raw
id, so ``qshpc cancel 363_2`` ran ``scancel 363``: every element. The run now records
the element's own id, ``363_2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ELEMENT = {
    "SLURM_JOB_ID": "363",  # the array's id: Slurm gave it to the highest index
    "SLURM_ARRAY_JOB_ID": "363",
    "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_RESTART_COUNT": "0",
}


def test_an_array_elements_run_is_named_by_the_elements_own_id() -> None:
    from qshpc.store.lock import slurm_run_id

    assert slurm_run_id(ELEMENT) == "363_2"
    assert slurm_run_id({**ELEMENT, "SLURM_JOB_ID": "364", "SLURM_ARRAY_TASK_ID": "0"}) == "363_0"
    assert slurm_run_id({"SLURM_JOB_ID": "335"}) == "335"  # a plain job: its id
    assert slurm_run_id({"SLURM_JOB_ID": "335", "SLURM_ARRAY_TASK_ID": ""}) == "335"
    assert slurm_run_id({}) is None
    assert slurm_run_id(None) is None


def test_the_lock_of_an_array_elements_run_names_the_element(tmp_path: Path) -> None:
    """The holder ``qshpc cancel`` scancels and the resume asks Slurm about is ``363_2``;
    a requeue of that element (same ids, a higher restart count) still takes the lock over."""
    from qshpc.client.job import _running_slurm_job
    from qshpc.store.lock import JobLock, JobLockedError, read_holder

    job = tmp_path / "job"
    job.mkdir()
    first = JobLock(job, "qshpc run", ELEMENT).acquire()
    try:
        holder = read_holder(job)
        assert holder is not None and holder.slurm_job == "363_2"
        assert "Slurm job 363_2" in holder.describe()
        assert _running_slurm_job(job) == ("363_2", None)
        with pytest.raises(JobLockedError):  # the same run's id again: still refused
            JobLock(job, "qshpc run --resume", ELEMENT).acquire()
        other = {**ELEMENT, "SLURM_ARRAY_TASK_ID": "1", "SLURM_RESTART_COUNT": "1"}
        with pytest.raises(JobLockedError):  # another element is no requeue of this one
            JobLock(job, "qshpc run --resume", other).acquire()
        requeued = JobLock(job, "qshpc run", {**ELEMENT, "SLURM_RESTART_COUNT": "1"}).acquire()
    finally:
        first._stop.set()  # (its lock was taken over: nothing of it to release)
    try:
        holder = read_holder(job)
        assert holder is not None and holder.slurm_job == "363_2" and holder.slurm_restarts == 1
    finally:
        requeued.release()


def test_job_over_refuses_what_is_not_a_slurm_id() -> None:
    from qshpc.submit.slurm import job_over

    assert job_over("363_x") is False
    assert job_over("abc") is False
