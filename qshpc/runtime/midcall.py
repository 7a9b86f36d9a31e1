"""A worker rank that rank 0 told to leave while a call still runs on it (``TAG_LEAVE``).

The job ended (the program returned, a ``get(..., timeout=)`` gave up) while
this worker's main thread still ran a call: rank 0 recorded that call
abandoned and waits a moment for this rank's goodbye, said by its heartbeat
thread (:class:`qshpc.runtime.worker.Heartbeat`). Then this rank must end:
under ``mpiexec`` the launcher ended it when rank 0 left, but ``srun`` does
not, and the rank ran its call to the end, then failed on a rank 0 that was
gone (an MPICH abort with an error stack, the Slurm job FAILED while qshpc said
SUCCEEDED, review44 F1). :func:`leave_mid_call` finalizes MPI (every rank
does: rank 0 and the other workers as usual) and exits 0 through the C
library's exit, from that thread.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

#: Seconds MPI_Finalize may take here before the kernel ends the rank (SIGALRM).
FINALIZE_LIMIT_S = 30


def leave_mid_call(rank: int, host: str, why: str, tee: Any = None, sent: bool = False) -> None:
    """Say why this rank stops, close its log ``tee``, finalize MPI, exit 0 (never returns).

    Args:
        rank: This worker's rank.
        host: Its host.
        why: Rank 0's words (what ended the job, the call abandoned).
        tee: The rank's :class:`~qshpc.runtime.logtee.LogTee`, closed so that the line
            reaches its log before the process ends.
        sent: That call ended as the LEAVE came and its result was sent: rank 0 stores
            it (its line "its result came after all ... and is stored"). On fixI's
            b8dd831 this line said "stops without it" then too (review48).
    """
    if sent:
        what = (
            "that call ended as the word came, and this rank sent its result to rank 0 "
            "before it stops"
        )
    else:
        what = "this rank stops without it (`qshpc status` records that call as TaskAbandoned)"
    try:
        print(f"qshpc: rank {rank} (host {host}): {why}; {what}", file=sys.stderr, flush=True)
        if tee is not None:
            tee.close()
    except Exception:  # the streams are the program's to break: leave anyway
        pass
    finalize_holding_gil()
    try:  # the C library's exit, the GIL held: MPICH ends its PMI connection in an exit
        # handler (with os._exit, mpiexec took the rank's end for a crash and killed the
        # ranks still finishing, rank 0 among them: see qshpc.runtime.leave._c_exit)
        import ctypes

        ctypes.PyDLL(None).exit(0)
    finally:
        os._exit(0)  # no C library to call


def finalize_holding_gil() -> None:
    """``MPI_Finalize``, called with Python's GIL held, when MPI is up.

    The main thread is still inside the call: holding the GIL keeps it (and
    every other Python thread) from making an MPI call meanwhile (mpi4py's own
    ``Finalize`` lets the GIL go). A finalize that hangs ends the rank after
    :data:`FINALIZE_LIMIT_S` (``alarm``: the default action of SIGALRM).
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return
    try:
        if not mpi.Is_initialized() or mpi.Is_finalized():
            return
        import ctypes

        finalize = ctypes.PyDLL(mpi.__file__).MPI_Finalize  # found in libmpi, its dependency
        signal.alarm(FINALIZE_LIMIT_S)
        finalize()
    except Exception:  # no MPI to finalize this way: the launcher ends the step
        pass
