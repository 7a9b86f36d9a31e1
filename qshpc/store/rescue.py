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
import stat
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


def _stem(job_dir: Path) -> str:
    return f"qshpc-result-{job_dir.name}"


def rescue_result(job_dir: Path, value: Any) -> Path | None:
    """Write ``value`` to ``qshpc-result-<job id>.h5`` in the first folder that takes it.

    Returns the file, or None when no folder could (the error then stands alone).
    """
    from qshpc.store.jobfile import save_arguments

    for folder in _folders():
        if folder == job_dir or job_dir in folder.parents:
            continue
        path = folder / f"{_stem(job_dir)}.h5"
        n = 1
        # A later save_result of the job replaces the one rescued before, as in the store
        # (a loop that catches the error left one copy a call, review29 F12c): written
        # whole beside, then renamed. Anything else of that name is left alone.
        while os.path.lexists(path) and _own_file(path) is None:
            n += 1
            path = folder / f"{_stem(job_dir)}-{n}.h5"
        try:
            save_arguments(path, {"result": value})
        except Exception:  # a full or read-only folder too, a value HDF5 cannot hold: next
            continue
        return path
    return None


def _own_file(path: Path) -> os.stat_result | None:
    """``path``'s lstat when it is this user's own regular file (else None: a link, a
    folder, another user's file, or none)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() else None


def rescued_error(exc: StoreError, path: Path | None) -> StoreError:
    """``exc`` with where the result went instead (or that it could not be kept)."""
    if path is None:
        return StoreError(
            f"{exc}. The result passed to save_result could not be kept anywhere else "
            "either (no folder among the working, home and temporary ones took it)"
        )
    import socket

    return StoreError(
        f"{exc}. The result passed to save_result is kept instead in {path} on host "
        f"{socket.gethostname()} (a compute node's own folder on a cluster: copy it from "
        f"there): read it with {rescued_text(path)}"
    )


def rescued(job_dir: Path, working_dir: str | None = None) -> Path | None:
    """The newest result :func:`rescue_result` kept for this job, looked for where it writes
    (and in the job's ``working_dir``), or None.

    Only this user's own regular files count: a file of that name in a shared temporary
    folder that someone else made is never named as the job's result.
    """
    folders = [Path(working_dir)] if working_dir else []
    best: tuple[float, Path] | None = None
    for folder in [*folders, *_folders()]:
        try:
            names = [n for n in os.listdir(folder) if n.startswith(_stem(job_dir))]
        except OSError:
            continue
        for name in names:
            if not name.endswith(".h5"):
                continue
            path = folder / name
            st = _own_file(path)
            if st is not None and (best is None or st.st_mtime > best[0]):
                best = (st.st_mtime, path)
    return None if best is None else best[1]


def rescued_text(path: Path) -> str:
    """The words that name a rescued result and how to read it."""
    return f"qshpc.load_arguments({str(path)!r})['result']"
