"""review32 F3, in a real Jupyter kernel (nbclient): a user error shows as its message alone.

On b6f478f each came with a traceback through qshpc's own source: `open_job('nope')` 6
frames, `LocalClient(workers=-1)` 1, `run(Program(entrypoint='nope.py'))` 3,
`job.result(timeout=...)` 3 (a TimeoutError), a failed job's `job.result()` 1 (job.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_notebook

import qshpc
from tests.conftest import PROGRAMS
from tests.notebook import nbrun

pytestmark = pytest.mark.mpi

SOURCE = str(Path(qshpc.__file__).parent) + "/"

CELLS = [
    "from qshpc import LocalClient, Program, open_job\nclient = LocalClient(workers=1)",
    "open_job('nope')",
    "LocalClient(workers=-1)",
    "client.run(Program(title='x', entrypoint='nope.py'))",
    "slow = client.run(Program(title='s', entrypoint='slow.py'), arguments={'n': 40})\n"
    "slow.result(timeout=0.5)",
    "slow.stop()\nfails = client.run(Program(title='f', entrypoint='task_fails.py'))\n"
    "fails.result()",
]


def _error(cell: Any) -> dict[str, Any]:
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    assert len(errors) == 1, cell.outputs
    return dict(errors[0])


def test_user_errors_show_their_message_without_qshpc_frames(qshpc_home: Path) -> None:
    cells = [new_code_cell(c) for c in CELLS]
    for c in cells[1:]:
        c.metadata["tags"] = ["raises-exception"]
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    out = nbrun.code_cells(nbrun.execute(nb, PROGRAMS))
    expected = [
        ("JobNotFoundError", "nope"),
        ("UserError", "workers"),
        ("UserError", "nope.py"),
        ("JobTimeoutError", "after 0.5 s: wait longer"),
        ("JobFailedError", "bad input 3"),
    ]
    for cell, (ename, word) in zip(out[1:], expected, strict=True):
        err = _error(cell)
        text = "\n".join(err["traceback"])
        assert err["ename"] == ename and word in text, (cell.source, err)
        assert text.startswith(f"{ename}: "), text
        assert SOURCE not in text, text  # no frame of qshpc's own source
