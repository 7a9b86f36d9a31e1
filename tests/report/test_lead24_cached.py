"""Session 24, lead: the report's timeline marks the attempts the result cache gave (review32
F9: a hit looked like a run, its tooltip said only SUCCEEDED, the legend had no entry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
from qshpc import distribute_task, get, save_result

@distribute_task(cache=True)
def sq(x):
    return x * x

save_result(get([sq(i) for i in range(4)]))
"""


def test_cache_hits_are_marked_in_the_timeline(tmp_path: Path, qshpc_home: Path) -> None:
    from qshpc.report.data import read_job
    from qshpc.report.svg import render
    from qshpc.report.timeline import build

    prog = tmp_path / "sq.py"
    prog.write_text(PROGRAM)
    env = {"QSHPC_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(2):
        out = run_cli("run", str(prog), "--workers", "1", env=env)
        assert out.returncode == 0, out.stderr
        svg = render(build(read_job(job_dir_of(qshpc_home), slurm=False)))
        if _ == 0:
            assert "from the result cache" not in svg and 'class="mark cached' not in svg
    assert svg.count("from the result cache (not run)") == 4
    assert "from the result cache (faded)" in svg  # the legend
