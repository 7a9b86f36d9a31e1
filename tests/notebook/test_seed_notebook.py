"""examples/seed_notebook.ipynb runs on a real Jupyter kernel and gives the exact result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from qshpc import open_job
from qshpc.store import JobReader
from tests.conftest import ROOT
from tests.notebook import nbrun

pytestmark = pytest.mark.mpi

NOTEBOOK = ROOT / "examples" / "seed_notebook.ipynb"


def exact(circuit: Any) -> dict[int, float]:
    """The circuit's outcome probabilities, computed here without qshpc."""
    from qiskit.quantum_info import Statevector

    bare = circuit.remove_final_measurements(inplace=False)
    return {int(k, 2): float(v) for k, v in Statevector(bare).probabilities_dict().items()}


def check_executed(nb: Any) -> None:
    """The checks shared by the local and the Slurm runs."""
    card = nbrun.data(nbrun.cell_for(nb, "program = Program("), "text/html")
    job_id = re.search(r'data-job="([^"]+)"', card).group(1)  # type: ignore[union-attr]
    result = nbrun.value(nbrun.cell_for(nb, "job.result()"))
    job = open_job(job_id)
    with JobReader.open(job.job_dir) as r:
        circuits = r.arguments()["circuits"]
    assert len(result["results"]) == len(circuits) == 5
    for got, circuit in zip(result["results"], circuits, strict=True):
        want = exact(circuit)
        for k in set(got) | set(want):
            assert got.get(k, 0.0) == pytest.approx(want.get(k, 0.0), abs=1e-9)
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    status = [c for c in nbrun.code_cells(nb) if c.source.strip() == "job.status()"]
    assert nbrun.value(status[0]) in ("QUEUED", "RUNNING", "SUCCEEDED")
    assert nbrun.value(status[1]) == "SUCCEEDED"
    final = nbrun.data(nbrun.cell_for(nb, "job"), "text/html")
    assert 'data-state="SUCCEEDED"' in final and ">SUCCEEDED<" in final
    assert nbrun.data(nbrun.cell_for(nb, "job"), "text/plain") == f"<Job | {job_id}>"
    assert nbrun.data(nbrun.cell_for(nb, "from qiskit.visualization"), "image/png")
    frame = nbrun.data(nbrun.cell_for(nb, "tasks = job.tasks"), "text/html")
    assert frame.count("distributed_sample") == 5
    assert nbrun.value(nbrun.cell_for(nb, "report = job.report()")) == "report.html"
    assert (job.job_dir / "report.html").is_file()


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbrun.read(NOTEBOOK)
    assert all(not c.outputs and c.execution_count is None for c in nbrun.code_cells(nb))
    assert "widgets" not in nb.metadata


def test_seed_notebook_on_local_ranks(qshpc_home: Path) -> None:
    nb = nbrun.execute(nbrun.read(NOTEBOOK), NOTEBOOK.parent, {"QSHPC_NOTEBOOK_CLIENT": "local"})
    client = nbrun.cell_for(nb, "import os")
    assert nbrun.data(client, "text/plain") == "<LocalClient | workers 2>"
    check_executed(nb)
