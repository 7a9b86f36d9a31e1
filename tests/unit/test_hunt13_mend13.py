"""Session 13's refactors (mend13): the shared helpers keep what the copies did."""

from __future__ import annotations

import os
import socket

from qshpc.store.lock import Holder, pid_gone


def test_a_holder_says_whether_it_runs_on_this_host() -> None:
    """``Holder.on_this_host`` (what the worker's rank-0 watch and the takeover check ask)."""
    here = Holder(host=socket.gethostname(), pid=os.getpid())
    assert here.on_this_host() and not pid_gone(here)
    assert not Holder(host=socket.gethostname() + "-elsewhere", pid=os.getpid()).on_this_host()
