"""The launcher's end note: a file where rank 0 writes the job's end once the store is final.

``qshpc run``'s launcher (:mod:`qshpc.launch.local`) makes the note (0600) and
gives its path to rank 0, which writes ``{"token", "state", "error"}`` into it
once the store is final (:func:`qshpc.runtime.rank0.tell_launcher`). The launcher
takes its exit code from it; a ``LocalClient``'s ``Job.result()`` returns at it.
Both read it with :func:`read_end_note`.
"""

from __future__ import annotations

import os
from typing import Any

from qshpc.jobstate import TERMINAL


def read_end_note(path: str, token: str | None = None) -> dict[str, Any] | None:
    """Rank 0's note at ``path`` when it names a final state, else None.

    Args:
        path: The note's file ("" reads as no note).
        token: The run's launch token: a note of another run (it names another
            token) reads as None. None: any run's (the client's own note, which
            only its launcher gives to rank 0).

    Returns:
        The note (``state`` one of SUCCEEDED, FAILED, CANCELED; ``error``; ``token``),
        or None when it is empty (not written yet: rank 0 still runs, or died),
        torn, gone, another run's or not an end.
    """
    import json

    if not path:
        return None
    try:
        if not os.stat(path).st_size:  # (a stat: the client looks every 10 ms)
            return None
        with open(path, "rb") as f:  # the launcher's own 0600 file: rank 0 writes it whole
            end = json.loads(f.read(1 << 20))
    except (OSError, ValueError):  # not yet written (or being written), or gone
        return None
    if not isinstance(end, dict) or end.get("state") not in TERMINAL:
        return None
    if token is not None and end.get("token") != token:
        return None
    return end
