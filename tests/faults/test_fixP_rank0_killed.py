"""fixP: rank 0 killed by a signal after the job's store was made final (review49 L4).

The kill is a real SIGKILL of rank 0 by itself, at a point the program chooses by
replacing rank 0's next step (its note to the launcher, or its summary): no outside
kill can be made to land between two lines of rank 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli
from tests.conftest import job_status as _status

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]

PROGRAM = """\
import os, signal, sys
from qshpc import distribute_task, get, save_result
from qshpc.runtime import rank0

@distribute_task()
def f(i):
    return i * 2

save_result(get([f(i) for i in range(4)]))
step = "tell_launcher" if sys.argv[1] == "note" else "_summary"
setattr(rank0, step, lambda *a: os.kill(os.getpid(), signal.SIGKILL))
"""


@pytest.mark.parametrize("at", ["note", "summary"])
def test_rank0_killed_after_the_store_is_final_is_said(
    qshpc_home: Path, tmp_path: Path, at: str
) -> None:
    """Before: `qshpc run` exited 0 and printed nothing at all: no summary, no word of the
    death. Now it says rank 0 died, how, and that the job's results are kept; the exit code
    stays the job's (SUCCEEDED: 0), as `qshpc status` says."""
    prog = tmp_path / "killed.py"
    prog.write_text(PROGRAM)
    out = run_cli("run", str(prog), at, "--workers", "1", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    job = job_dir_of(qshpc_home)
    assert re.search(
        r"qshpc: rank 0 \(pid \d+\) died: SIGKILL \(killed: out of memory, or kill -9\), after "
        r"the job's store was made final \(SUCCEEDED\): every result is kept",
        out.stderr,
    ), out.stderr
    assert f"qshpc status {job}" in out.stderr
    assert "SUCCEEDED (4 tasks run)" not in out.stdout  # (its summary never came)
    assert _status(job)["state"] == "SUCCEEDED"
    assert json.loads(run_cli("result", str(job), "--json").stdout) == [0, 2, 4, 6]
