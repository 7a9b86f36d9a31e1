"""Keep a saved result that the job store cannot take (hunt23b).

When ``save_result``'s commit fails (the job's file system turned read-only or
filled up while the job ran), the result was computed but not stored: before
this module, it was lost with the process. It is written instead, as a
standalone arguments file (``{"result": value}``, read back with
``qshpc.load_arguments``), into the first folder outside the job that takes it:
the program's working directory, the home directory, then the temporary one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from qshpc.errors import StoreError


def _folders() -> list[Path]:
    """Where a rescued result may go, best first (each once)."""
    found: list[Path] = []
    for get in (Path.cwd, Path.home, lambda: Path(tempfile.gettempdir())):
        try:
            folder = get().resolve()
        except (OSError, RuntimeError):  # a deleted cwd, no HOME
            continue
        if folder not in found:
            found.append(folder)
    return found


def rescue_result(job_dir: Path, value: Any) -> Path | None:
    """Write ``value`` to ``qshpc-result-<job id>.h5`` in the first folder that takes it.

    Returns the file, or None when no folder could (the error then stands alone).
    """
    from qshpc.store.jobfile import save_arguments

    for folder in _folders():
        if folder == job_dir or job_dir in folder.parents:
            continue
        path = folder / f"qshpc-result-{job_dir.name}.h5"
        n = 1
        while os.path.lexists(path):
            n += 1
            path = folder / f"qshpc-result-{job_dir.name}-{n}.h5"
        try:
            save_arguments(path, {"result": value})
        except Exception:  # a full or read-only folder too, a value HDF5 cannot hold: next
            continue
        return path
    return None


def rescued_error(exc: StoreError, path: Path | None) -> StoreError:
    """``exc`` with where the result went instead (or that it could not be kept)."""
    if path is None:
        return StoreError(
            f"{exc}. The result passed to save_result could not be kept anywhere else "
            "either (no folder among the working, home and temporary ones took it)"
        )
    return StoreError(
        f"{exc}. The result passed to save_result is kept instead in {path}: read it with "
        f"qshpc.load_arguments({str(path)!r})['result']"
    )
