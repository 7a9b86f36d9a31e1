"""Session 22's fault hunt (hunt22c) on the dev Slurm cluster: the call a queued Slurm
job unpickles stays as private as the store, whatever the umask (docs/bad-input.md,
"Session 22, hunt22c").
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_submitits_folder_and_pickle_are_private_under_a_umask_of_002(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    # On e5f893c, under a umask of 002, JOB/slurm was 0775 and JOB/slurm/*_submitted.pkl
    # 0664: in a team's store (job folders 0750: the group may enter) any member could
    # replace or rewrite the call a queued job of yours unpickles, and run code as you.
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(5)\n")
    before = os.umask(0o002)
    try:
        out = run_cli("submit", str(prog), "--ntasks-per-node", "1", "--json", timeout=60)
    finally:
        os.umask(before)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    folder = Path(ids["job_dir"]) / "slurm"
    assert _mode(folder) == 0o700
    pickles = list(folder.glob("*_submitted.pkl"))
    assert pickles and all(_mode(p) == 0o600 for p in pickles)
    done = run_cli("wait", ids["job_id"], "--timeout", "180", timeout=210)
    assert done.stdout.strip() == "SUCCEEDED", done.stderr
    assert run_cli("result", ids["job_id"], timeout=60).stdout.strip() == "5"
