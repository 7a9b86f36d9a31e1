"""Ranks meet on a socket before ``MPI_Init`` instead of spinning in it (qshpc.runtime.mpi).

MPICH's ``MPI_Init`` waits for the host's other ranks with ``sched_yield`` in a
loop: on 2 cores with 3 ranks the early ones took the CPU the late one needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import mpiexec

pytestmark = pytest.mark.mpi

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
import os, sys, time
rank = int(os.environ["PMI_RANK"])
if rank == int(sys.argv[1]):
    time.sleep(0.4)
if sys.argv[2] != "-":
    os.environ["MPI_LOCALNRANKS"] = sys.argv[2]
from qshpc.runtime.mpi import local_rendezvous
t = time.process_time()
came = local_rendezvous(float(sys.argv[3]))
cpu = time.process_time() - t
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()
sys.stdout.write(f"{rank} {came} {cpu:.3f}\\n")
sys.stdout.flush()
"""


def _run(tmp_path: Path, late: int, count: str, timeout: float) -> list[list[str]]:
    script = tmp_path / "meet.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [mpiexec(), "-n", "3", sys.executable, str(script), str(late), count, str(timeout)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(line.split() for line in out.stdout.splitlines())


@pytest.mark.parametrize("late", [0, 2])
def test_ranks_wait_for_a_late_one_asleep(tmp_path: Path, late: int) -> None:
    """Local rank 0 late or another: every rank sees all came, and waiting cost no CPU."""
    rows = _run(tmp_path, late, "-", 30)
    assert [r[:2] for r in rows] == [["0", "True"], ["1", "True"], ["2", "True"]]
    for _, _, cpu in rows:
        assert float(cpu) < 0.15, rows  # a 0.4 s wait; spinning took 0.3 s of it


def test_a_rank_that_never_comes_is_waited_for_only_until_the_timeout(tmp_path: Path) -> None:
    """Each rank believes a fourth one is on this host: nobody meets, all go on to MPI_Init."""
    rows = _run(tmp_path, -1, "4", 0.5)
    assert [r[:2] for r in rows] == [["0", "False"], ["1", "False"], ["2", "False"]]


def test_outside_hydra_there_is_nothing_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.runtime.mpi import local_rendezvous

    for name in ("MPI_LOCALNRANKS", "MPI_LOCALRANKID", "PMI_FD"):
        monkeypatch.delenv(name, raising=False)
    assert local_rendezvous(5.0) is False
