"""review38 F10 under Slurm: ``qshpc submit io.py -- a b`` gives rank 0 and its tasks the
program's ``sys.argv``, ``['io.py', 'a', 'b']`` (the name in the staged folder, the job's
cwd), as ``python io.py a b`` there would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.slurm.test_submit import wait

PROGRAM = """\
import sys
from qshpc import distribute_task, get, save_result

@distribute_task()
def task_argv():
    return sys.argv

save_result({"rank0": list(sys.argv), "task": get(task_argv())})
"""


def test_submit_gives_rank0_and_tasks_the_programs_argv(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "io.py").write_text(PROGRAM)
    out = run_cli(
        "submit", str(tmp_path / "io.py"), "--ntasks-per-node", "2", "--json", "--", "a", "b",
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = str(json.loads(out.stdout.strip().splitlines()[-1])["job_id"])
    assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
    res = json.loads(run_cli("result", job, "--json", timeout=60).stdout)
    assert res == {"rank0": ["io.py", "a", "b"], "task": ["io.py", "a", "b"]}
