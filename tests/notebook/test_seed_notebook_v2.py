"""examples/seed_notebook_v2.ipynb (the seed notebook with Qiskit 2's SamplerV2) on a real kernel."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from qshpc import open_job
from qshpc.store import JobReader
from tests.conftest import ROOT
from tests.notebook import nbrun
from tests.notebook.test_seed_notebook import exact

pytestmark = pytest.mark.mpi

NOTEBOOK = ROOT / "examples" / "seed_notebook_v2.ipynb"
SHOTS = 1024


def job_of(cell: Any) -> str:
    html = nbrun.data(cell, "text/html")
    return re.search(r'data-job="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def check_counts(counts: dict[str, int], circuit: Any) -> None:
    """1024 shots, only possible outcomes, each within 6 sigma of its probability."""
    assert sum(counts.values()) == SHOTS
    probs = exact(circuit)
    for key, n in counts.items():
        p = probs.get(int(key, 2), 0.0)
        assert p > 1e-12, f"{key} cannot happen for this circuit"
        assert abs(n - SHOTS * p) <= 6 * math.sqrt(SHOTS * p * (1 - p)) + 3


def check_executed(nb: Any) -> None:
    job = open_job(job_of(nbrun.cell_for(nb, "program = Program(")))
    with JobReader.open(job.job_dir) as r:
        circuits = r.arguments()["circuits"]
    by_program = nbrun.value(nbrun.cell_for(nb, "job.result()"))["results"]
    by_mode = nbrun.value(nbrun.cell_for(nb, "result = primitive_job.result()"))
    assert len(by_program) == len(by_mode) == len(circuits) == 5
    for counts, circuit in zip(by_program, circuits, strict=True):
        check_counts(counts, circuit)
    for counts, circuit in zip(by_mode, circuits, strict=True):
        check_counts(counts, circuit)
    status = [c for c in nbrun.code_cells(nb) if c.source.strip() == "job.status()"]
    assert nbrun.value(status[1]) == "SUCCEEDED"
    assert 'data-state="SUCCEEDED"' in nbrun.data(nbrun.cell_for(nb, "job"), "text/html")
    final = nbrun.data(nbrun.cell_for(nb, "primitive_job.job"), "text/html")
    assert 'data-state="SUCCEEDED"' in final
    assert nbrun.data(nbrun.cell_for(nb, "from qiskit.visualization"), "image/png")
    assert (job.job_dir / "report.html").is_file()


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbrun.read(NOTEBOOK)
    assert all(not c.outputs and c.execution_count is None for c in nbrun.code_cells(nb))


def test_seed_notebook_v2_on_local_ranks(qshpc_home: Path) -> None:
    nb = nbrun.execute(nbrun.read(NOTEBOOK), NOTEBOOK.parent, {"QSHPC_NOTEBOOK_CLIENT": "local"})
    check_executed(nb)
