"""The job store survives SIGKILL of its writer at random moments, and a full disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qshpc.errors import StoreError
from qshpc.store import JobReader, JobWriter, create_job
from tests.conftest import tmpfs

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from store_writer_child import expected_result, record  # noqa: E402

KILLS = 32


def _check(job_dir: Path, reported: int, checked: int, rng: random.Random) -> int:
    """The file opens and holds records 0..n-1 (n >= reported), all intact.

    Results are compared for the records added since the last check (from
    ``checked`` on) and for a sample of older ones; every one is decoded.
    """
    with JobReader.open(job_dir) as r:
        meta = r.meta()
        tasks = r.tasks()
        ids = [int(t["task_id"]) for t in tasks]
        assert ids == list(range(len(ids))), "records must form a prefix, each exactly once"
        assert len(ids) >= reported, f"lost committed records: {len(ids)} < {reported}"
        assert meta["records"] == len(ids)
        done = r.done_records()
        sample = set(rng.sample(ids[:checked], min(checked, 20))) | set(ids[checked:])
        for i in sorted(sample):
            got = done[f"{i:064x}"]
            assert got.provenance == {"i": i}
            want = expected_result(i)
            if isinstance(want, np.ndarray):
                np.testing.assert_array_equal(got.result, want)
            else:
                assert got.result == want
        return len(ids)


def _run_and_kill(job_dir: Path, seed: int, delay: float, after_open: bool) -> int:
    """Start a writer, SIGKILL it ``delay`` s after start (or after its open); return
    the last committed count it reported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "store_writer_child.py"), str(job_dir), str(seed)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    first = child.stdout.readline() if after_open and child.stdout else ""
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    out = first + out
    assert child.returncode == -signal.SIGKILL, f"child ended on its own: {child.returncode}"
    counts = [int(x) for x in out.split()]
    return max(counts, default=0)


@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_keeps_every_commit(tmp_path: Path) -> None:
    rng = random.Random(1234)
    t0 = time.monotonic()
    total_checked = checked = 0
    job_dir = tmp_path / "job kill ü"
    for k in range(KILLS):
        if k % 4 == 0:  # a fresh job now and then (keeps the files small)
            job_dir = tmp_path / f"job kill ü {k}"
            create_job(job_dir, {"id": f"k{k}", "created": time.time()}, {"n": k})
            checked = 0
        # Two in three kills land while records are being committed; the others
        # during startup: imports, the rebuild of the killed file, the SWMR switch.
        if k % 3:
            reported = _run_and_kill(job_dir, k, rng.uniform(0.0, 0.3), after_open=True)
        else:
            reported = _run_and_kill(job_dir, k, rng.uniform(0.1, 0.8), after_open=False)
        checked = _check(job_dir, reported, checked, rng)
        total_checked += checked
    assert total_checked > 0
    print(f"{KILLS} kills in {time.monotonic() - t0:.1f} s")  # ~35 s on an idle 2-core box


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny fs", "size=2m") as mnt:
        yield mnt


def test_disk_full_raises_store_error_and_keeps_commits(small_fs: Path) -> None:
    job_dir = small_fs / "job"
    create_job(job_dir, {"id": "full", "created": time.time()}, None)
    w = JobWriter.open(job_dir, {"mpi_size": 1, "ranks": [], "started": time.time()})
    committed = 0
    rng = np.random.default_rng(0)
    with pytest.raises(StoreError) as info:
        for i in range(10_000):
            rec = record(i)
            rec.result = rng.random(2000)  # incompressible 16 KB
            w.append_task(rec)
            if i % 5 == 4:
                w.commit()
                committed = i + 1
    msg = str(info.value)
    assert str(job_dir / "job.journal") in msg and "no space left on device" in msg
    assert committed > 0
    with pytest.raises(StoreError):
        w.append_task(record(0))  # the writer stays broken
    w.close()
    with JobReader.open(job_dir) as r:
        tasks = r.tasks()
        assert [int(t["task_id"]) for t in tasks][:committed] == list(range(committed))
        assert r.task_result(str(committed - 1)).shape == (2000,)
