"""Where this process stands: its rank, its cores, and the task it is running.

The runtime fills these in; code inside tasks (the Aer layer, user code) reads
them. Nothing here imports mpi4py, so reading the context is free.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job.

    Attributes:
        rank: Rank in COMM_WORLD (0 runs the program).
        size: Number of ranks.
        local_rank: Rank among the ranks on this host.
        local_size: Number of ranks on this host.
        host: Host name.
        cpus: Cores this rank may use: Slurm's cpus-per-task when it gave one, else the
            cores of this process's affinity mask divided by the ranks on the host.
        host_cores: Cores the ranks of this host may use together: the union of
            their affinity masks (0: not known; read this process's mask then).
            Slurm binds each rank to its own cores: one rank's mask then says 1
            where the host's ranks hold ``local_size``.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    host: str = field(default_factory=socket.gethostname)
    cpus: int = 1
    host_cores: int = 0

    def crowded(self) -> bool:
        """Do this host's ranks outnumber the cores they may use together?"""
        cores = self.host_cores or available_cores()
        return self.local_size > cores


class Step(NamedTuple):
    """The ranks a multi-rank call holds while it runs (``target={"ranks": k}``).

    The call itself runs on one worker; the cores of ``size`` ranks are kept
    free for it, and it starts a step of ``size`` processes of its own (an MPI
    world of its own: a nested ``mpiexec`` locally, an ``srun`` job step under
    Slurm; :mod:`qshpc.aer.distributed`). ``hosts`` says where each of those processes
    should run: the hosts of the ranks held.

    Attributes:
        size: Processes of the step (k).
        hosts: One host name per process.
    """

    size: int
    hosts: tuple[str, ...]


class TaskContext(NamedTuple):
    """The task running in this thread (a NamedTuple: cheap to make once per call).

    Attributes:
        task_id: Stable id: the call index on rank 0 ("17"); nested calls "17.2".
        function: Qualified name of the task function.
        seed: Seed derived from the job seed and ``task_id``; None without a job seed.
        attempt: 1 for the first try, 2 for the first retry, ...
        step: The ranks held for a multi-rank call (:class:`Step`), else None.
    """

    task_id: str
    function: str
    seed: int | None = None
    attempt: int = 1
    step: Step | None = None

    @property
    def cpus(self) -> int:
        """The threads this task may use: its ``target={"cpu": k}``, else the rank's cores."""
        return task_threads()


def affinity_mask() -> int | None:
    """This process's affinity mask as a bit set (bit ``c``: core ``c``); None where the
    system has no affinity calls (macOS)."""
    try:
        cores = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return None
    mask = 0
    for c in cores:
        mask |= 1 << c
    return mask


def available_cores() -> int:
    """The cores of this process's affinity mask."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def cores_for_rank(
    local_size: int, cpus_per_task: int | None = None, available: int | None = None
) -> int:
    """Cores one rank may use, so that the ranks of a host never oversubscribe it.

    Args:
        local_size: Ranks on this host.
        cpus_per_task: Cores the batch system gave each rank (Slurm's
            ``--cpus-per-task``, passed down by whoever started the runtime), if any.
        available: The cores of that rank's affinity mask (default: this process's).
    """
    if cpus_per_task is not None and cpus_per_task > 0:
        return cpus_per_task
    cores = available_cores() if available is None else available
    return max(1, cores // max(1, local_size))


_rank_info: RankInfo | None = None


class _TaskLocal(threading.local):
    """This thread's task state; the class defaults make a read outside tasks cheap
    (``getattr`` of a missing attribute of a plain ``threading.local`` raises inside:
    ~1 us, 5x a found one, at every call's ``current_task()``)."""

    stack: list[tuple[TaskContext, dict[str, Any]]] | None = None
    threads = 0


_local = _TaskLocal()
_job_seed: int | None = None


def rank_info() -> RankInfo:
    """Return this process's :class:`RankInfo` (a single rank when no runtime runs)."""
    global _rank_info
    if _rank_info is None:
        _rank_info = RankInfo(cpus=cores_for_rank(1))
    return _rank_info


def set_rank_info(info: RankInfo) -> None:
    """Set by the runtime once MPI is up."""
    global _rank_info
    _rank_info = info


def job_seed() -> int | None:
    """The job seed given with ``--seed`` (None when none was given)."""
    return _job_seed


def set_job_seed(seed: int | None) -> None:
    """Set by the runtime from ``--seed``."""
    global _job_seed
    _job_seed = seed


_worker_job: str | None = None


def worker_job() -> str | None:
    """A worker rank's job directory (None on rank 0 and outside a job)."""
    return _worker_job


def set_worker_job(job_dir: str | None) -> None:
    """Set by a worker once rank 0 told it the job (``get_arguments`` in a task reads it)."""
    global _worker_job
    _worker_job = job_dir


_in_job = False


def in_job() -> bool:
    """True in a rank of a job (``qshpc run``, its ranks, a client's job); False in plain Python."""
    return _in_job


def set_in_job() -> None:
    """Set by the runtime as a rank joins a job (rank 0 before the program, each worker)."""
    global _in_job
    _in_job = True


def task_threads() -> int:
    """Threads the running task may use: its target's ``cpu`` when given, else the rank's cores."""
    return getattr(_local, "threads", 0) or rank_info().cpus


def set_task_threads(threads: int) -> int:
    """Set the running thread's task threads (0: the rank's cores); returns the previous value."""
    old: int = getattr(_local, "threads", 0)
    _local.threads = threads
    return old


def local_step(size: int) -> Step:
    """A :class:`Step` of ``size`` processes on this host (a call run in-process)."""
    return Step(size, (rank_info().host,) * size)


def current_task() -> TaskContext | None:
    """Return the task running in this thread, or None outside tasks."""
    stack: list[tuple[TaskContext, dict[str, Any]]] | None = getattr(_local, "stack", None)
    return stack[-1][0] if stack else None


def record_provenance(**fields: Any) -> None:
    """Attach JSON-able fields to the running task's stored record (no-op outside tasks)."""
    stack: list[tuple[TaskContext, dict[str, Any]]] | None = getattr(_local, "stack", None)
    if stack:
        stack[-1][1].update(fields)


def push_task(ctx: TaskContext) -> dict[str, Any]:
    """Enter a task (runtime only); returns the dict that collects its provenance."""
    stack: list[tuple[TaskContext, dict[str, Any]]] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = []
        _local.stack = stack
    prov: dict[str, Any] = {}
    stack.append((ctx, prov))
    return prov


def pop_task() -> None:
    """Leave the current task (runtime only)."""
    stack = _local.stack
    assert stack is not None  # push_task made it
    stack.pop()


def thread_state() -> dict[str, Any]:
    """This thread's task state (the running task, its threads), for :func:`adopt_thread_state`."""
    state = dict(vars(_local))
    if "stack" in state:
        state["stack"] = list(state["stack"])  # the same tasks and provenance dicts
    return state


def adopt_thread_state(state: dict[str, Any]) -> None:
    """Give this thread the task state another thread had (:func:`thread_state`).

    A call that runs in a helper thread while its caller waits (an ``async def``
    task under a running event loop) is still that task: ``current_task()``,
    its seed, its nested calls' ids and its provenance are the caller's.
    """
    vars(_local).update(state)


#: True once this process holds a placed object (``put``) with out-of-band buffers
#: (numpy arrays): only then can a task's result hold a read-only view of placed memory.
_placed_buffers = False


def note_placed_buffers() -> None:
    """Record that this process holds a placed object with out-of-band buffers."""
    global _placed_buffers
    _placed_buffers = True


def placed_buffers() -> bool:
    """True once a placed object of this process has out-of-band buffers (numpy arrays)."""
    return _placed_buffers


__all__ = [
    "RankInfo",
    "Step",
    "TaskContext",
    "adopt_thread_state",
    "cores_for_rank",
    "current_task",
    "in_job",
    "job_seed",
    "local_step",
    "note_placed_buffers",
    "placed_buffers",
    "rank_info",
    "record_provenance",
    "set_in_job",
    "set_job_seed",
    "set_rank_info",
    "set_task_threads",
    "set_worker_job",
    "task_threads",
    "thread_state",
    "worker_job",
]
