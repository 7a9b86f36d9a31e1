"""``qshpc submit --dry-run`` prints the batch script it would submit: golden files. No cluster.

To accept a deliberate change: ``QSHPC_UPDATE_GOLDEN=1 pytest tests/slurm/test_submit_dryrun.py``.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {
    "cpu": ["--ntasks-per-node", "2", "--time-min", "10", "--name", "seed-example"],
    "gpu_multinode": [
        "--nodes",
        "2",
        "--ntasks-per-node",
        "4",
        "--cpus-per-task",
        "2",
        "--gpus-per-node",
        "4",
        "--mem-gb",
        "7.5",
        "--partition",
        "gpu",
        "--account",
        "proj42",
        "--qos",
        "normal",
        "--sbatch",
        "constraint=a100",
        "--sbatch",
        "comment=two words; $(id)",
        "--requeue",
    ],
}


def normalize(script: str, home: Path) -> str:
    script = script.replace(str(home.resolve()), "QSHPC_HOME").replace(str(home), "QSHPC_HOME")
    script = re.sub(r"\d{8}-\d{6}-[0-9a-f]{6}", "JOB_ID", script)
    return script.replace(sys.executable, "PYTHON")


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_golden(
    case: str, tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog = tmp_path / "work" / "program.py"
    prog.parent.mkdir()
    prog.write_text("print('hi')\n")
    for key in [k for k in os.environ if k.startswith("QSHPC_SLURM_")]:
        monkeypatch.delenv(key)  # site defaults would change the script
    out = run_cli("submit", str(prog), "--dry-run", *CASES[case], cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    got = normalize(out.stdout, qshpc_home)
    assert not (qshpc_home / "jobs").exists(), "a dry run must create nothing"
    record = GOLDEN / f"dry_run_{case}.sbatch"
    if os.environ.get("QSHPC_UPDATE_GOLDEN"):
        record.write_text(got)
    if not record.exists():
        record.write_text(got)
        pytest.fail(f"recorded a new golden file {record}: check it, then rerun")
    want = record.read_text()
    if got != want:
        diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "now"))
        pytest.fail(
            f"batch script changed:\n{diff}\naccept with QSHPC_UPDATE_GOLDEN=1 (or rm {record})"
        )


def test_dry_run_refuses_bad_values(tmp_path: Path) -> None:
    prog = tmp_path / "program.py"
    prog.write_text("print('hi')\n")
    out = run_cli("submit", str(prog), "--dry-run", "--name", "x; rm -rf ~", cwd=tmp_path)
    assert out.returncode == 2 and "job name" in out.stderr and not out.stdout
