"""What the runtime asks of the batch system that started the job, and the requeue it may ask for.

The runtime reads no ``SLURM_*`` variable and runs no Slurm command: whoever
starts it (``qshpc run`` on the command line, the function submitit runs in
every Slurm task) passes a :class:`Scheduler`, or None outside a batch job.
Slurm's is :class:`qshpc.submit.slurm.SlurmScheduler`.

Requeue (``qshpc submit --requeue``): rank 0 turns some signals into a requeue
instead of a cancel (:meth:`Scheduler.requeue_reason`). The store is then not
finalized: it keeps every committed task result, the sub-status says the job
was requeued, and the next start resumes from the stored results.
"""

from __future__ import annotations

from typing import Protocol

from qshpc.task.execute import Interrupt


class Requeue(Interrupt):
    """Raised in the program's thread when the job is to be requeued.

    Attributes:
        why: What happened, for the job's sub-status.
        ask_scheduler: True when rank 0 must ask for the requeue itself (a time
            limit is near); False when the scheduler already requeued the job.
    """

    def __init__(self, why: str, ask_scheduler: bool) -> None:
        super().__init__(why)
        self.why = why
        self.ask_scheduler = ask_scheduler


class Scheduler(Protocol):
    """The batch system's side of a running job (Slurm's: ``qshpc.submit.slurm.SlurmScheduler``)."""

    def cpus_per_task(self) -> int | None:
        """Cores each rank was given, when the batch system says (None: count the affinity mask)."""
        ...

    def run_record(self) -> dict[str, str] | None:
        """What to keep in the store about this allocation (``runs/<n>`` ``slurm``)."""
        ...

    def mpi_env(self) -> dict[str, str]:
        """Variables this rank's MPI needs from this batch system, set (unless set) before MPI_Init."""
        ...

    def requeue_reason(self, signum: int) -> Requeue | None:
        """The requeue a signal to rank 0 means, or None (then it is a cancel)."""
        ...

    def requeue(self) -> str | None:
        """Ask for this job to be requeued; None on success, else what went wrong."""
        ...

    def step_tasks(self) -> int:
        """Processes the batch system started in this step as one (1 outside a step)."""
        ...

    def local_launch_env(self) -> dict[str, str]:
        """Variables (set unless set) that make ``qshpc run``'s own ``mpiexec`` start its
        ranks on this node, not through the batch system."""
        ...


__all__ = ["Requeue", "Scheduler"]
