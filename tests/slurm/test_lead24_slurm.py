"""Session 24, lead: FI_PROVIDER=tcp, which qshpc gives the ranks' MPI under Slurm (review32
F0), stays out of the program's own environment and what it starts (review33 F3)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.slurm.test_submit import wait

PROGRAM = """\
import os, subprocess, sys
from qshpc import distribute_task, get, save_result

@distribute_task()
def seen():
    return os.environ.get("FI_PROVIDER")

child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('FI_PROVIDER'))"],
                       capture_output=True, text=True).stdout.strip()
save_result({"rank0": os.environ.get("FI_PROVIDER"), "task": get(seen()), "child": child,
             "netmod": os.environ.get("MPIR_CVAR_CH4_NETMOD")})
"""


def test_fi_provider_is_the_mpi_s_only(slurm_env: dict[str, str], tmp_path: Path) -> None:
    prog = tmp_path / "env.py"
    prog.write_text(PROGRAM)
    out = run_cli("submit", str(prog), "--nodes", "2", "--ntasks-per-node", "1", "--json",
                  timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = str(json.loads(out.stdout.splitlines()[-1])["job_id"])
    assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
    res = json.loads(run_cli("result", job, "--json", timeout=60).stdout)
    assert res["rank0"] is None and res["task"] is None and res["child"] == "None", res
