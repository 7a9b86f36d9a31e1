"""review37 (fix37): the V2 primitives' options, methods, errors and metadata."""

from __future__ import annotations

import pytest

from qshpc.program.refs import CancelledError, TaskRef, cancel_all, mark_running


def test_cancel_all_cancels_every_queued_ref_or_none() -> None:
    """F2: one started reference keeps every other one (all or nothing, as Future.cancel())."""
    refs = [TaskRef(str(i), "f") for i in range(3)]
    mark_running(refs[1:2])
    assert not cancel_all(refs)
    assert not any(r.cancelled() for r in refs)
    queued = [TaskRef(str(i), "f") for i in range(3)]
    queued[0].cancel()
    assert cancel_all(queued) and all(r.cancelled() for r in queued)
    with pytest.raises(CancelledError):
        queued[2].result()
    assert not mark_running(queued)  # a cancelled block is never dispatched
