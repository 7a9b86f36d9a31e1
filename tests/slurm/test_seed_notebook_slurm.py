"""examples/seed_notebook.ipynb on the dev Slurm cluster: its switch cell finds Slurm and uses it;
then the report of that job shows Slurm's accounting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qshpc import open_job
from tests.notebook import nbrun
from tests.notebook.test_seed_notebook import NOTEBOOK, check_executed

pytestmark = pytest.mark.slurm


def test_seed_notebook_on_slurm(slurm_env: dict[str, str], qshpc_home: Path) -> None:
    nb = nbrun.execute(nbrun.read(NOTEBOOK), NOTEBOOK.parent,
                       {"QSHPC_NOTEBOOK_CLIENT": "auto"}, timeout=600)  # fmt: skip
    client = nbrun.data(nbrun.cell_for(nb, "import os"), "text/plain")
    assert client.startswith("<SlurmClient |"), client
    check_executed(nb)
    card = nbrun.data(nbrun.cell_for(nb, "job"), "text/html")
    job_id = re.search(r'data-job="([^"]+)"', card).group(1)  # type: ignore[union-attr]
    job = open_job(job_id)
    assert job.info().get("slurm_job_id")
    assert "slurm" in card  # the card names the Slurm job
    report = job.report()
    text = report.read_text()
    assert 'id="slurm"' in text and "MaxRSS" in text
    assert "No accounting" not in text, text[text.index('id="slurm"') :][:600]


def test_seed_notebook_v2_on_slurm(slurm_env: dict[str, str], qshpc_home: Path) -> None:
    from tests.notebook.test_seed_notebook_v2 import NOTEBOOK as V2
    from tests.notebook.test_seed_notebook_v2 import check_executed as check_v2

    nb = nbrun.execute(nbrun.read(V2), V2.parent, {"QSHPC_NOTEBOOK_CLIENT": "auto"}, timeout=600)
    client = nbrun.data(nbrun.cell_for(nb, "import os"), "text/plain")
    assert client.startswith("<SlurmClient |"), client
    check_v2(nb)
