"""Job arrays: the folder an array's elements share, their meta, their argument list."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qshpc.errors import UserError
from qshpc.jobs.paths import qshpc_home

ARRAYS_DIR = "arrays"


def array_folder(array_id: str) -> Path:
    """The folder shared by the elements of one array (``$QSHPC_HOME/arrays/<array_id>``)."""
    return qshpc_home().absolute() / ARRAYS_DIR / array_id


def ensure_arrays_root() -> Path:
    """``$QSHPC_HOME/arrays``, created if missing and checked as ``jobs/`` is.

    It holds each array's shared folder, and with it a Slurm array's pickled calls
    (``slurm/``): whoever could rename an array's folder could have theirs loaded.
    So it is made and checked like ``jobs/`` (3770 in a team's store, see
    :func:`qshpc.store.perms.ensure_store_dir`); review23 F3.

    Raises:
        UnsafeStoreError: It is not the user's own (or the team's), or cannot be made.
    """
    from qshpc.store.perms import ensure_private_dir, ensure_store_dir

    home = qshpc_home().absolute()
    ensure_private_dir(home, "$QSHPC_HOME")
    return ensure_store_dir(home / ARRAYS_DIR, "the arrays folder")


def drop_array_if_gone(job_dir: Path) -> bool:
    """Remove the folder of ``job_dir``'s array once no element folder of it is left.

    ``qshpc rm`` and ``qshpc gc`` call this after removing a job folder, so that
    an array's shared folder (its manifest, Slurm's submission files, a local
    array's driver log) goes with its last element.

    Returns:
        True when the array folder was removed.
    """
    import shutil

    match = re.fullmatch(r"(.+)-\d+", job_dir.name)
    if match is None:
        return False
    folder = array_folder(match.group(1))
    try:
        from qshpc.jobs.paths import read_small

        # never a FIFO's open or read: `qshpc rm` of an element waited for good (hunt16)
        elements = json.loads(read_small(folder / "array.json", 1 << 24))["elements"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if job_dir.name not in elements or any((job_dir.parent / e).exists() for e in elements):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def array_meta(array_id: str, index: int, size: int) -> dict[str, Any]:
    """The meta keys of element ``index`` of an array of ``size`` jobs."""
    return {"array_id": array_id, "array_index": index, "array_size": size}


def check_arguments_list(arguments_list: Any) -> None:
    """Refuse an argument list for ``map`` that is empty, not a list, or holds a non-dict.

    Raises:
        UserError: What is wrong, and which element.
    """
    if isinstance(arguments_list, (str, bytes, dict)) or not isinstance(arguments_list, Sequence):
        raise UserError(
            f"arguments_list must be a list of argument dicts, got {type(arguments_list).__name__}"
        )
    if not arguments_list:
        raise UserError("arguments_list is empty: give one argument dict per element")
    for i, a in enumerate(arguments_list):
        if a is not None and not isinstance(a, dict):
            raise UserError(f"arguments_list[{i}] must be a dict (or None), got {type(a).__name__}")
