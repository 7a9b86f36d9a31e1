"""MPI start-up: the communicators, the wiring rank 0 and the workers talk through, each rank's place.

The only module that imports mpi4py (lazily, in :func:`start`).
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from qshpc.runtime.procs import connect_within, installed, stat_fields
from qshpc.runtime.procs import peer_cred as peer_cred
from qshpc.runtime.stopsig import launched_by_mpi as launched_by_mpi
from qshpc.runtime.unload import Unloadable
from qshpc.task.context import RankInfo, affinity_mask, cores_for_rank

#: The MPICH variable choosing its network module (``ucx`` or ``ofi``).
NETMOD_VAR = "MPIR_CVAR_CH4_NETMOD"


def note_workers_ignored(workers: int | None) -> None:
    """One stderr line from rank 0 when ``--workers`` is given under mpiexec or srun: the
    launcher started the ranks, so it is ignored (review24 F11: it was, without a word)."""
    if workers is None:
        return
    if (os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0") != "0":
        return
    print(
        f"qshpc: note: --workers {workers} is ignored under mpiexec/srun: the job runs on the "
        "ranks the launcher started",
        file=sys.stderr,
    )


@functools.cache
def pypi_mpich() -> bool:
    """True when the MPI here is the PyPI ``mpich`` wheel (what mpi4py loads when it is installed):
    its ``mpich-*.dist-info`` folder is on ``sys.path``."""
    return installed("mpich-")


def local_env() -> dict[str, str]:
    """MPI variables for ranks that all run on this host, to set unless set (the user's value wins).

    The PyPI ``mpich`` wheel's ranks use its ``ch4:ofi`` (libfabric) network
    module instead of its default ``ch4:ucx``: ``MPI_Init`` takes ~0.07 s less
    wall and ~0.06 CPU s less a rank on this 2-core VM (benchmarks/mpi_start.py);
    under Slurm's PMI2 UCX's address exchange breaks (:func:`qshpc.submit.slurm.mpi_env`).
    ``MPIR_CVAR_CH4_NETMOD=ucx`` in the environment restores UCX. Other MPIs are left alone.
    """
    return {NETMOD_VAR: "ofi"} if pypi_mpich() else {}


def rank_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """:func:`local_env` for a rank started by a user's ``mpiexec``, when every rank is on this host.

    Every rank of a job must choose the same network module. Each rank runs
    this same code and sees the same answer: hydra's ``MPI_LOCALNRANKS`` equals
    ``PMI_SIZE`` on every rank of a one-host job and on none of a job over
    several hosts, whose ranks keep MPICH's default (a fabric UCX may serve
    better than the wheel's libfabric). The launcher hands every rank the same
    environment, so a value the user set is kept on all of them.
    """
    env = os.environ if environ is None else environ
    if NETMOD_VAR in env:  # set by the user or by qshpc's own launcher: nothing to look up
        return {}
    here = env.get("MPI_LOCALNRANKS")
    return local_env() if here is not None and here == env.get("PMI_SIZE") else {}


class MpiWiring:
    """The :class:`~qshpc.runtime.protocol.Wiring` of an MPI rank.

    Args:
        mpi: The ``mpi4py.MPI`` module.
        comm: The pkl5 communicator over COMM_WORLD.
    """

    def __init__(self, mpi: Any, comm: Any) -> None:
        self.mpi = mpi
        self.comm = comm
        self.world = mpi.COMM_WORLD
        self.any_source: int = mpi.ANY_SOURCE
        self.any_tag: int = mpi.ANY_TAG
        self.multithreaded = bool(mpi.Query_thread() == mpi.THREAD_MULTIPLE)
        from mpi4py.util import pkl5

        # pkl5's own two steps of Message.recv (receive the bytes, unpickle them), so that
        # rank 0 keeps the bytes when they do not unpickle (:meth:`receive`); a pkl5
        # without them: Message.recv, and such a message fails the dispatcher as before.
        self._raw = getattr(pkl5, "_mrecv_data", None)
        self._loads = getattr(pkl5, "_pickle_loads", None)

    def receive(self, msg: Any) -> Any:
        """Receive a message matched by ``improbe``: the object sent.

        Raises:
            Unloadable: The bytes came but did not unpickle (they are kept in it).
        """
        raw, loads = self._raw, self._loads
        if raw is None or loads is None:
            return msg.recv()
        data, bufs = raw(msg, self.mpi.Message.Recv, None)
        try:
            return loads(data, bufs)
        except Exception as exc:
            raise Unloadable(data, bufs) from exc

    def status(self) -> Any:
        """A fresh ``MPI.Status``."""
        return self.mpi.Status()

    def finalized(self) -> bool:
        """Whether ``MPI_Finalize`` was called."""
        return bool(self.mpi.Is_finalized())

    def finalize(self) -> None:
        """``MPI_Finalize`` (once: a second call does nothing)."""
        if not self.mpi.Is_finalized():
            self.mpi.Finalize()


def start(cpus_per_task: int | None = None) -> tuple[MpiWiring, RankInfo, list[dict[str, Any]]]:
    """Initialise MPI; return this rank's wiring, its RankInfo, and every rank's record.

    ``cpus_per_task``: the cores each rank was given by the batch system
    (Slurm's ``--cpus-per-task``), if any; else the affinity mask is shared out.

    One collective right after ``MPI_Init`` (when every rank is there anyway)
    tells each rank where all the others are: rank 0 never waits for the
    workers again before it runs the program. The records (rank, host, pid, start_ticks,
    local_rank, cpus) go to the job's store.

    The pkl5 communicator sends pickled data out of band, so objects over
    2 GiB (a 32-qubit statevector is 64 GiB) do not overflow MPI's int counts.
    """
    local_rendezvous(RENDEZVOUS_S)
    from mpi4py import MPI
    from mpi4py.util import pkl5

    world = MPI.COMM_WORLD
    # Errors come back as exceptions instead of aborting every rank: a dead
    # worker must not take rank 0 (and the store's final state) down with it.
    world.Set_errhandler(MPI.ERRORS_RETURN)
    comm = pkl5.Intracomm(world)
    mask = affinity_mask()
    places: list[tuple[str, int, int, int | None, int | None, int | None]] = world.allgather(
        (socket.gethostname(), os.getpid(), _count(mask), mask, _started(), _pidns())
    )
    rank, size = world.Get_rank(), world.Get_size()
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    union: dict[str, int | None] = {}
    for r, (host, pid, _, m, ticks, pidns) in enumerate(places):
        records.append(
            {
                "rank": r,
                "host": host,
                "pid": pid,
                "start_ticks": ticks,
                "pidns": pidns,
                "local_rank": seen.get(host, 0),
            }
        )
        seen[host] = seen.get(host, 0) + 1
        if host not in union:
            union[host] = m
        else:
            was = union[host]
            union[host] = None if was is None or m is None else was | m
    for rec, (host, _, cores, _m, _t, _n) in zip(records, places, strict=True):
        rec["cpus"] = cores_for_rank(seen[host], cpus_per_task, cores)
    mine = records[rank]
    info = RankInfo(
        rank=rank,
        size=size,
        local_rank=mine["local_rank"],
        local_size=seen[mine["host"]],
        host=mine["host"],
        cpus=mine["cpus"],
        host_cores=_count(union[mine["host"]]),
    )
    return MpiWiring(MPI, comm), info, records


#: The longest a rank waits for this host's other ranks before ``MPI_Init`` (then it goes on).
RENDEZVOUS_S = 5.0


def local_rendezvous(timeout: float) -> bool:
    """Wait, asleep, until every rank hydra started on this host is here; True when all came.

    MPICH's ``MPI_Init`` waits for the host's other ranks in a loop of
    ``sched_yield`` calls: a rank that got there first spins until the last
    one arrives. With more ranks than cores (3 on a 2-core laptop: rank 0 and
    a worker per core) the spinning ranks take the CPU the late ones need to
    get there: measured, 0.32-0.35 CPU s spent by each of two ranks that
    waited 0.3 s for a third, against 0.14 s with nanosleep (and none here);
    in a cold job the ranks reach it 20-130 ms apart. So they meet first
    on a socket, blocked in the kernel: local rank 0 listens on an abstract
    Unix socket named after hydra's proxy (the peer of ``PMI_FD``, the same
    for every rank it started), the others connect, and it answers each once
    all are in. Anything unusual (not under hydra, one rank, a name in use, a
    rank that never comes within ``timeout``) and the rank goes on to
    ``MPI_Init`` as before: the rendezvous only ever saves CPU, MPI_Init still
    makes the ranks wait for each other.
    """
    try:
        count = int(os.environ.get("MPI_LOCALNRANKS", "0"))
        mine = int(os.environ.get("MPI_LOCALRANKID", "-1"))
        proxy = proxy_pid(int(os.environ.get("PMI_FD", "-1")))
    except ValueError:
        return False
    if count < 2 or not 0 <= mine < count or proxy is None:
        return False
    import time

    # The host's name too: containers that share a network namespace (and so its abstract
    # sockets) but not their pids could have proxies of the same pid.
    name = f"\0qshpc-mpi-init-{socket.gethostname()}-{proxy}-{count}"
    deadline = time.monotonic() + timeout
    try:
        if mine == 0:
            return _gather(name, count - 1, deadline)
        return _join(name, deadline)
    except OSError:
        return False


def proxy_pid(fd: int) -> int | None:
    """The pid of the process at the other end of ``fd`` (hydra's proxy on ``PMI_FD``)."""
    if fd < 0:
        return None
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            pid = peer_cred(sock)[0]
    except OSError:
        return None
    return pid if pid > 0 else None


def _gather(name: str, others: int, deadline: float) -> bool:
    """Local rank 0: take ``others`` connections, then answer each (all are in)."""
    import time

    joined: list[socket.socket] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)  # in use: not ours (OSError: go on without)
        server.listen(others)
        try:
            while len(joined) < others:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                server.settimeout(left)
                conn, _ = server.accept()
                joined.append(conn)
            for conn in joined:
                conn.sendall(b"g")
            return True
        finally:
            for conn in joined:
                conn.close()


def _join(name: str, deadline: float) -> bool:
    """Another local rank: connect (local rank 0 may not listen yet), wait for its word."""
    import time

    conn = connect_within(name, deadline)
    if conn is None:
        return False
    with conn as sock:
        if peer_cred(sock)[1] != os.getuid():  # an abstract name anyone could take: not ours
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        return sock.recv(1) == b"g"


def _started() -> int | None:
    """This process's start time (``/proc/self/stat``'s field 22, clock ticks since boot):
    with its pid it names this rank, so that a pid reused by another process once the
    rank is gone is never taken for it (``qshpc status``, ``cancel``: review30 F1)."""
    fields = stat_fields(os.getpid())
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _count(mask: int | None) -> int:
    """The cores of an affinity mask (a mask not known: the host's cores)."""
    if mask is None:
        return os.cpu_count() or 1
    return bin(mask).count("1")


def _pidns() -> int | None:
    """This process's pid namespace (as :data:`qshpc.store.lock.PIDNS`, not imported here: a
    worker's start): with the host, where its pid means this rank (review33 F2)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
