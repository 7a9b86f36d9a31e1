"""Session 23's hunt23a, in a real Jupyter kernel: a cancelled job's card and list count the
calls stopped at the cancel apart from failures, not in red.

On db7f14c (/tmp/baseMain) the card said "4 done / 6 submitted, 2 failed" with 2 sixths of
its bar red, and the list "4 done, 2 failed".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.report.card import STATE_COLOURS
from tests.faults.test_hunt23a import cancelled_with_stopped_calls
from tests.notebook import nbrun
from tests.notebook.test_job_display import notebook

pytestmark = pytest.mark.mpi


def test_a_cancelled_jobs_card_shows_its_stopped_calls(qshpc_home: Path, tmp_path: Path) -> None:
    job = cancelled_with_stopped_calls(tmp_path)
    nb = nbrun.execute(
        notebook(
            f"from qshpc import open_job, list_jobs\njob = open_job({str(job.job_dir)!r})",
            "job",
            "list_jobs()",
            "print(list_jobs().to_pandas().reindex(columns=['failed', 'stopped']).loc[0].tolist())",
        ),
        tmp_path,
    )
    cells = nbrun.code_cells(nb)
    card = nbrun.data(cells[1], "text/html")
    assert card is not None and 'data-state="CANCELED"' in card
    assert "4 done / 6 submitted, 2 stopped" in card and " failed" not in card, card
    assert 'data-failed="0" data-stopped="2"' in card
    assert f"width:33.33%;background:{STATE_COLOURS['STOPPED']}" in card  # orange, not red
    table = nbrun.data(cells[2], "text/html")
    assert "4 done, 2 stopped" in table and " failed" not in table, table
    assert nbrun.stdout(cells[3]).strip() == "[2, 2]"  # failed keeps its meaning
