"""Execute a notebook on a real Jupyter kernel (ipykernel through nbclient), as a person would."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def execute(nb: Any, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> Any:
    """Run every cell of ``nb`` in a fresh ``python3`` kernel started in ``cwd``; return ``nb``.

    Raises:
        nbclient.exceptions.CellExecutionError: A cell raised (its traceback is in the message).
    """
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(cwd)}},
            store_widget_state=True,
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def read(path: Path) -> Any:
    """The notebook at ``path``."""
    return nbformat.read(path, as_version=4)


def code_cells(nb: Any) -> list[Any]:
    """The code cells, in order."""
    return [c for c in nb.cells if c.cell_type == "code"]


def cell_for(nb: Any, source: str) -> Any:
    """The first code cell whose source is ``source`` (stripped), else the first starting with it."""
    cells = code_cells(nb)
    for c in cells:
        if c.source.strip() == source:
            return c
    for c in cells:
        if c.source.startswith(source):
            return c
    raise KeyError(f"no cell {source!r}")


def data(cell: Any, mime: str) -> Any:
    """The last output of ``cell`` that has ``mime`` (its value), or None."""
    found = None
    for out in cell.outputs:
        if mime in out.get("data", {}):
            found = out["data"][mime]
    return found


def value(cell: Any) -> Any:
    """The cell's ``text/plain`` result as a Python value."""
    text = data(cell, "text/plain")
    assert text is not None, f"no text/plain output in {cell.source!r}: {cell.outputs}"
    return ast.literal_eval(text)


def stdout(cell: Any) -> str:
    """What the cell printed."""
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def widget_values(nb: Any) -> dict[str, Any]:
    """Model id -> value of every ipywidgets HTML model stored with the notebook."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {
        k: v["state"].get("value")
        for k, v in state.get("state", {}).items()
        if v.get("model_name") == "HTMLModel"
    }
