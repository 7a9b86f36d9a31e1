"""Ranks held for multi-rank calls (``target={"ranks": k}``): which, for which call, until when.

A multi-rank call runs its function on one worker (the leader), which starts a
step of k processes of its own (an MPI world of their own: Aer distributes over
``MPI_COMM_WORLD``). Those processes need k ranks' cores, so rank 0 holds the
leader and k - 1 more idle workers for as long as the call runs: the dispatcher
sends them nothing, and their idle loop sleeps. When the job has exactly k - 1
workers, rank 0's own core is the k-th: its program thread waits in ``get``
while the call runs. A job with fewer ranks than k fails the call at once, with
the count it needs.

The step's processes run where the held ranks are: the call gets their hosts
(:class:`qshpc.task.context.Step`), and under Slurm ``run_circuits`` pins its
``srun`` step to those nodes (``--nodelist``; ``qshpc.submit.slurm.SrunStep.placed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc.errors import ResourceError
from qshpc.program.backend import task_ranks

if TYPE_CHECKING:
    from qshpc.runtime.intake import Entry
    from qshpc.runtime.liveness import WorkerState


def ranks_of(e: Entry) -> int:
    """Ranks the queued call ``e`` runs on (1 for an ordinary call)."""
    return task_ranks(e.task)


class Holds:
    """The workers held for running multi-rank calls.

    Args:
        host0: Rank 0's host (its core may be the last one a call needs).

    Attributes:
        held: Worker rank -> the batch id of the call it is held for (the leader too).
        root: Batch ids of the calls that hold rank 0's core (its program thread
            then runs no call itself: :mod:`qshpc.runtime.rootwork`).
    """

    def __init__(self, host0: str) -> None:
        self.host0 = host0
        self.held: dict[int, int] = {}
        self.calls: dict[int, list[int]] = {}  # batch id -> worker ranks held for it
        self.root: set[int] = set()

    def plan(
        self, e: Entry, workers: list[WorkerState]
    ) -> tuple[list[WorkerState], tuple[int, tuple[str, ...]]] | BaseException | None:
        """Where the multi-rank call ``e`` starts now.

        Returns:
            ``(workers to hold, the leader first; (k, hosts))`` when enough are idle;
            None to wait; an error when the job can never give the call its ranks.
        """
        k = ranks_of(e)
        live = [w for w in workers if w.alive]
        if k > len(live) + 1:
            return ResourceError(
                f"task {e.ref.task_id} ({e.task.name}) asks for {k} ranks, and this job has "
                f"{len(live) + 1} (rank 0 and {len(live)} worker(s) alive): run it with at least "
                f"{k} ranks (qshpc run --workers {k - 1}; qshpc submit with --nodes x --ntasks-per-node "
                f"of {k} or more; sbatch --ntasks={k} or more)"
            )
        idle = [w for w in live if not w.batches and w.rank not in self.held]
        need = min(k, len(live))
        if len(idle) < need:
            return None
        chosen = idle[:need]
        hosts = [w.host for w in chosen] + [self.host0] * (k - need)
        return chosen, (k, tuple(hosts))

    def hold(self, bid: int, chosen: list[WorkerState], size: int) -> None:
        """Hold ``chosen`` (the leader first) for the ``size``-rank call of batch ``bid``
        (and rank 0's core when ``chosen`` are fewer)."""
        ranks = [w.rank for w in chosen]
        for r in ranks:
            self.held[r] = bid
        self.calls[bid] = ranks
        if size > len(ranks):
            self.root.add(bid)

    def release(self, bid: int) -> None:
        """The call of batch ``bid`` ended: its workers take batches again."""
        for r in self.calls.pop(bid, ()):
            self.held.pop(r, None)
        self.root.discard(bid)

    def drop_lost(self, workers: list[WorkerState]) -> None:
        """Release the holds of calls whose leader was lost (their batch failed with it)."""
        for bid, ranks in list(self.calls.items()):
            leader = workers[ranks[0] - 1]
            if not leader.alive or bid not in leader.batches:
                self.release(bid)


__all__ = ["Holds", "ranks_of"]
