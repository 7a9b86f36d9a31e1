"""``python signal_at_mpi_start.py SIGNAL qshpc-args...``: the ``qshpc`` command, with SIGNAL
sent to this process just before it calls MPI_Init (a Ctrl-C or a scancel reaching the ranks
while they start: a timing that cannot be made reliably otherwise)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import qshpc.runtime.mpi as mpi
from qshpc.cli import main

_start = mpi.start
_signal = getattr(signal, sys.argv[1])


def _signalled_start(*args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), _signal)
    return _start(*args, **kwargs)


mpi.start = _signalled_start  # type: ignore[assignment]
sys.argv = ["qshpc", *sys.argv[2:]]
main()
