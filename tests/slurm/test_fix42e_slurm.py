"""Session 26, fix42e (review44 F1): under Slurm, a program that ends while calls still run
(Ray's ``wait(refs, num_returns=1)`` then ``save_result``; a ``get(..., timeout=)`` that gave
up) leaves a Slurm job COMPLETED, not FAILED.

On main fda8945 ``srun`` did not end the busy workers when rank 0 left: they ran their calls
to the end, then MPICH aborted on a rank 0 that was gone (``Fatal error in internal_Testall``
stacks in rank-2.out), or waited ~30 s for its lock to lapse; sacct said FAILED 15:0 or 1:0
while qshpc said SUCCEEDED, and ``--dependency=afterok`` chains broke.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from qshpc.errors import error_head
from tests.conftest import run_cli
from tests.slurm.sbatch_util import wait_terminal
from tests.slurm.test_submit import wait

pytestmark = pytest.mark.slurm

PROGRAM = """\
import time
from qshpc import distribute_task, get, save_result, wait

@distribute_task()
def quick():
    return "quick"

@distribute_task()
def slow(t):
    time.sleep(t)
    return t

refs = [quick(), slow(60), slow(60)]
done, pending = wait(refs, num_returns=1)
try:
    get(refs[1], timeout=0.5)
except TimeoutError:
    pass
save_result({"done": len(done), "pending": len(pending)})
"""


def _submit_on_two_nodes(program: Path, text: str, **env: str) -> dict[str, Any]:
    """Write ``text`` to ``program``, submit it on 2 nodes of 2 tasks; submit's JSON line."""
    program.write_text(text)
    args = ["submit", str(program), "--nodes", "2", "--ntasks-per-node", "2", "--json"]
    out = run_cli(*args, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return info


def test_a_program_that_ends_while_calls_run_leaves_the_slurm_job_completed(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    info = _submit_on_two_nodes(tmp_path / "first.py", PROGRAM)
    job, slurm_job = str(info["job_id"]), str(info["slurm_job_id"])
    assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
    # Every rank exited 0: the allocation COMPLETED (the 60 s calls were not waited for)
    assert wait_terminal(slurm_job, 50) == "COMPLETED"
    assert json.loads(run_cli("result", job, "--json").stdout) == {"done": 1, "pending": 2}
    logs = Path(info["job_dir"]) / "logs"
    text = "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.out")))
    assert "Abort(" not in text and "Fatal error" not in text, text
    assert "is gone: its lock" not in text, text
    # Each busy worker says in its log that it stops without its call, as its record says
    ranks = "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("rank-*.out")))
    assert ranks.count("this rank stops without it") == 2, ranks
    meta = json.loads(run_cli("status", job, "--json").stdout)
    assert meta["task_counts"] == {"SUCCEEDED": 1, "FAILED": 2} and meta["tasks_stopped"] == 2
    assert ranks.count("TaskAbandoned: the program ended (the job SUCCEEDED)") == 2, ranks


def test_doctor_counts_the_dev_clusters_nodes_once(multinode_env: dict[str, str]) -> None:
    """review44 F6: its 3 nodes are in two partitions (debug, batch): doctor said 6 node(s)."""
    from tests.slurm.conftest import node_states

    out = run_cli("doctor", timeout=120)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("slurm"))
    assert f"; {len(node_states())} node(s)" in line, line


DIES = """\
import os, time
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    time.sleep(0.3)
    if i == 5:
        os._exit(7)
    return i

save_result(get([f(i) for i in range(12)]))
"""


def test_a_worker_lost_under_slurm_says_what_is_kept_and_the_resume_command(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """review44 F2: under Slurm a dead worker was lost at the 30 s heartbeat timeout, and the
    error was the WorkerLostError alone (the local report's "N finished task results are
    kept" and the resume command were missing). Now its end is seen on its host."""
    job = str(_submit_on_two_nodes(tmp_path / "die.py", DIES)["job_id"])
    assert wait(job) == "FAILED"
    error = json.loads(run_cli("status", job, "--json").stdout)["error"]
    # The error's own line (what the run's last line and the card show; session 29: the words
    # were on the remote traceback's last line, below it)
    last = error_head(error)
    # Seen on its host (by rank 0, or by the other worker of n2): not the 30 s heartbeat timeout
    seen = (
        r"WorkerLostError: worker rank [1-3] on host n\d \(pid \d+\) ended \(its process is gone, "
    )
    assert re.search(seen + r"seen by rank [0-3] on the same host: .* task\(s\) \[", last), error
    assert "finished task results are kept in the store" in last, error
    assert last.endswith(f"`qshpc submit --resume {job}` runs only the unfinished tasks"), error
