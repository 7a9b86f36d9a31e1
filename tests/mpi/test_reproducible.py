"""Same program, arguments and --seed: bit-identical sampled results on 1, 2 and 3 ranks."""

from __future__ import annotations

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def _run(ranks: int, seed: int) -> object:
    from qshpc.store import JobReader

    out = run_cli(
        "run", str(PROGRAMS / "seeded_shots.py"), "--seed", str(seed), ranks=ranks, timeout=180
    )
    assert out.returncode == 0, out.stderr
    import os
    from pathlib import Path

    home = Path(os.environ["QSHPC_HOME"])
    with JobReader.open(job_dir_of(home)) as r:
        tasks = r.tasks()
        assert all(t["seed"] is not None for t in tasks)
        return r.result()["results"]


def test_bit_identical_across_rank_counts() -> None:
    one = _run(1, 7)
    assert one == _run(2, 7)
    assert one == _run(3, 7)
    assert one != _run(2, 8)  # the seed matters
