"""fix34: review34 F5, a member's ``qshpc run`` in a team's store whose ``jobs/`` another
member made 2750 (qshpc's submit did before fix34, review34 F4).

On 9aef6f4 the run said ``cannot write .../jobs/<id>/job.h5: Permission denied. Check
that the folder is writable ... (df -h .../jobs/<id>)``: a folder that was never made,
and no fix. It now says what ``qshpc submit`` says: who owns ``jobs/`` and the chmod.
Members are simulated as hunt22a's tests do (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid)")

TEAM_GID = 4500
FIRST, SECOND = 4343, 4242


@pytest.fixture
def team() -> Iterator[Path]:
    """A team's store (3770) whose ``jobs/`` the first member made 2750."""
    base = Path(tempfile.mkdtemp(prefix="qshpc-fix34-"))
    os.chmod(base, 0o755)
    (base / "p.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    home = base / "team"
    (home / "jobs").mkdir(parents=True)
    for d, mode in ((home, 0o3770), (home / "jobs", 0o2750)):
        os.chown(d, FIRST, TEAM_GID)
        os.chmod(d, mode)
    try:
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_a_members_run_in_a_jobs_folder_it_cannot_write_names_the_owner_and_fix(
    team: Path,
) -> None:
    jobs = team / "jobs"
    member = ["setpriv", f"--reuid={SECOND}", f"--regid={SECOND}", f"--groups={TEAM_GID}"]
    member += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(team)}
    env["QSHPC_SHARE_GROUP"] = "1"
    out = subprocess.run(
        [*member, sys.executable, "-m", "qshpc", "run", "p.py", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=team.parent,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "job.h5" not in out.stderr and "df -h" not in out.stderr
    assert "cannot make the job's folder" in out.stderr and "Permission denied" in out.stderr
    assert f"{jobs} belongs to" in out.stderr and f"`chmod 3770 {jobs}`" in out.stderr
    assert os.listdir(jobs) == []
