"""Rank start-up under an MPI launcher: every rank joins, rank 0 prepares the job.

Rank 0 creates (or reopens) the job and runs it (:mod:`qshpc.runtime.rank0`);
the others preload what tasks need meanwhile, then serve its tasks
(:mod:`qshpc.runtime.worker`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc import _timeline, settings
from qshpc.errors import QshpcError, StoreError, UserError
from qshpc.jobs.paths import export_data_path
from qshpc.jobs.prepare import LAUNCH_TOKEN, RunSpec, claim_job, never_started, prepare_job
from qshpc.runtime.blas import limit_blas_threads
from qshpc.runtime.program_main import add_program_path, defer_signals
from qshpc.runtime.protocol import TAG_JOB
from qshpc.runtime.scheduler import Scheduler
from qshpc.runtime.startwatch import watch
from qshpc.task import context

if TYPE_CHECKING:
    from qshpc.runtime.mpi import MpiWiring


#: libfabric's provider variable (:data:`qshpc.submit.slurm.PROVIDER_VAR`, not imported here).
PROVIDER_VAR = "FI_PROVIDER"


def run_rank(spec: RunSpec, scheduler: Scheduler | None = None) -> int:
    """Join the job as this rank (under mpiexec or srun); return the exit code.

    Right after ``MPI_Init`` the ranks exchange where they are (one collective);
    then rank 0 creates the job (reading the arguments) and runs the program
    while the workers import what tasks need. Rank 0 never waits for them: its
    task calls queue until a worker takes them, and each worker's heartbeats
    start before its imports.

    Args:
        spec: What ``qshpc run`` was asked.
        scheduler: The batch system that started the job (Slurm), or None.
    """
    from qshpc.runtime.mpi import rank_env, start

    if scheduler is None:  # a user's mpiexec: this host's ranks are forks of one server
        from qshpc.runtime.forkserver import join_local

        join_local(spec.program, spec.cache_meta())
    # Every rank of the job runs this and gets the same environment from its launcher,
    # so they all choose the same network module (ofi for the PyPI mpich under Slurm,
    # and under a user's mpiexec whose ranks are all on this host).
    added: list[str] = []
    for key, value in (scheduler.mpi_env() if scheduler is not None else rank_env()).items():
        if key not in os.environ:  # the user's own setting wins
            os.environ[key] = value
            added.append(key)
    _hold_launcher_socket()
    watchdog = watch(settings.MPI_START_TIMEOUT_S.get(), spec.job_dir)
    wiring, info, ranks = start(scheduler.cpus_per_task() if scheduler is not None else None)
    if PROVIDER_VAR in added:  # read by libfabric at MPI_Init: not for the program's own
        os.environ.pop(PROVIDER_VAR, None)  # processes (a site MPI of theirs: review33 F3)
    if watchdog is not None:
        watchdog.started()
    context.set_rank_info(info)
    limit_blas_threads(info.cpus)  # before numpy loads OpenBLAS (prepare_job, the worker)
    _timeline.mark("mpi")
    cache_job = settings.CACHE_JOB.get()  # the launcher's word: the job's cache is on
    os.environ.pop(settings.CACHE_JOB.name, None)  # not for the runs a program or task starts
    stdin_of = os.environ.pop(settings.LAUNCH_STDIN.name, None)
    if stdin_of and info.rank == 0:  # the caller's stdin, read only as the program reads it
        from qshpc.runtime.stdin import take

        if not take(stdin_of):  # the program reads an empty stdin: said, not silent
            print(
                "qshpc: warning: rank 0 cannot read qshpc run's stdin (not on the launcher's "
                "host, or the launcher is gone); the program's stdin is empty",
                file=sys.stderr,
                flush=True,
            )
    if info.rank != 0:
        export_data_path(create=False)  # rank 0's run_job makes the folder
        context.set_in_job()
        # (under Slurm: a worker watches its host's others, see qshpc.runtime.gone)
        return _serve(spec, wiring, info, cache_job, ranks if scheduler is not None else None)
    job_dir, error, failure = _prepare(spec, scheduler)
    # The program's sys.argv as rank 0 runs it (a resume's, the job's recorded arguments:
    # review39 F0, the workers' own command line had none under mpiexec and srun)
    argv = spec.program_argv()
    _tell_workers(
        wiring,
        info.size,
        (str(job_dir) if job_dir else None, error, str(spec.program.resolve()), argv),
    )
    if failure is not None:
        raise failure
    if error is not None:
        raise UserError(error)
    assert job_dir is not None
    add_program_path(spec.program.resolve())
    from qshpc.runtime.rank0 import run_job

    hosts = [r["host"] for r in ranks]

    def stop() -> None:  # the job cannot start and its folder goes: the workers end first
        _stop_workers(wiring, info.size)
        _await_goodbyes(wiring, ranks)
        wiring.finalize()  # (as after the goodbyes of a job that ran: no second STOP below)

    try:
        code = run_job(
            spec, job_dir, wiring, hosts, ranks, scheduler, release=wiring.finalize, stop=stop
        )
    except BaseException:
        _stop_workers(wiring, info.size)  # a store that cannot be opened, say: or they wait forever
        raise
    # Finalize here (if run_job did not), not at interpreter exit: whatever hosts
    # this process afterwards (submitit pickles a result and may leave with
    # os._exit) must not leave the workers waiting in MPI_Finalize's PMI barrier.
    wiring.finalize()
    return code


_Prepared = tuple[Path | None, str | None, BaseException | None]


def _prepare(spec: RunSpec, scheduler: Scheduler | None) -> _Prepared:
    """Rank 0: create (or reopen) the job and take its lock; the job, or why not.

    The error (a line for the workers) and the exception to raise once they know
    are returned, not raised: the workers wait for rank 0's word either way.
    """
    job_dir: Path | None = None
    error: str | None = None
    failure: BaseException | None = None
    defer_signals()  # a cancel while the job starts cancels it as the program would start
    from qshpc.runtime.gctune import uncollected

    try:
        with uncollected():  # (qiskit's import, when the arguments hold circuits)
            job_dir = prepare_job(spec)
            claim_job(spec, job_dir, scheduler.run_record() if scheduler is not None else None)
    except UserError as exc:
        error = str(exc)
    except StoreError as exc:  # its lock could not be taken (a full disk, say)
        removed = never_started(job_dir, exc, locked=False) if job_dir is not None else None
        error, failure = removed or str(exc), StoreError(removed) if removed else exc
    except BaseException as exc:  # tell the workers, or they wait in the bcast forever
        error, failure = f"rank 0 could not prepare the job: {exc!r}", exc
    _timeline.mark("job prepared")
    return job_dir, error, failure


def _stop_workers(wiring: MpiWiring, size: int) -> None:
    """Rank 0 could not run the job: tell every worker to stop (they wait for batches).

    Not once rank 0 let the workers leave MPI (they said goodbye): MPI is finalized then.
    """
    from qshpc.runtime.protocol import STOP, TAG_STOP

    if wiring.finalized():
        return
    for rank in range(1, size):
        try:
            wiring.comm.send(STOP, dest=rank, tag=TAG_STOP)
        except Exception:  # pragma: no cover - best effort: the launcher ends the rest
            pass


def _await_goodbyes(wiring: MpiWiring, ranks: list[dict[str, Any]]) -> None:
    """Rank 0, after STOP: wait for each worker's goodbye (each sends it once it stopped,
    after its log was opened), for ``QSHPC_WORKER_TIMEOUT_S`` at most.

    review50 F4: the folder of a job that could not start was removed while the workers
    still opened their logs in it, and ``J/logs/rank-N.out`` stayed (MPI_Finalize does not
    wait for the other ranks with MPICH's ofi module).
    """
    from qshpc.runtime.liveness import Liveness, WorkerState

    workers = [
        WorkerState(int(r["rank"]), str(r["host"]), int(r["pid"])) for r in ranks if r["rank"]
    ]
    timeout = settings.WORKER_TIMEOUT_S.get()
    Liveness(wiring, workers, timeout).goodbyes(timeout=timeout)


_held: list[Any] = []  # the connection to the launcher, open until this process ends


def _hold_launcher_socket() -> None:
    """Connect to the ``qshpc run`` launcher that started this rank, and hold it until the end.

    Its close (with this process's files, when it dies) tells the launcher this
    rank ended before mpiexec could end the others (:class:`qshpc.launch.deaths.Deaths`).
    Nothing when started otherwise, or when the launcher cannot be reached.
    """
    name = os.environ.pop(settings.LAUNCH_WATCH.name, None)
    if not name:
        return
    import socket

    for high in (False, True):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)  # a full backlog: go without, never wait
        try:
            sock.connect("\0" + name)
        except OSError:
            sock.close()
            return
        _held.append(_moved_high(sock) if high else sock)
    if len(_held) == 2:
        os.register_at_fork(after_in_child=_let_go_in_child)


def _let_go_in_child() -> None:
    """In a child forked without exec: the rank's connections to the launcher are not its own.

    A child the program or a task forked that outlived the rank held them open:
    its rank's death was then seen only at the child's, after the ranks mpiexec
    ended meanwhile, and one of those was blamed for it.
    """
    for sock in _held:
        try:
            sock.close()
        except OSError:
            pass
    del _held[:]


def _moved_high(sock: Any) -> Any:
    """``sock`` on a file descriptor above every other of this rank's (1023 at most).

    A dying process's files are released in an order the kernel chooses: by
    descriptor, lowest first, on older kernels; highest first on newer ones
    (6.x: task_work runs last in, first out). mpiexec's proxy ends the other
    ranks the moment a rank's PMI descriptor closes (9-15 here); a connection
    on a low descriptor (6) then closed after it, and under load mpiexec had
    killed rank 0 before the launcher saw the dead rank's close: on 2dca53c
    the post-mortem blamed rank 0 or 2 for a kill -9 of rank 1, 3 times in 240
    (test_worker_dies, 'flaky 1 in 20' in CI). One connection low and one high:
    the first of the two to close is before the PMI descriptor either way.
    """
    import fcntl
    import resource

    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        top = min(1023 if soft == resource.RLIM_INFINITY else soft - 1, 1023)
        fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, top)
    except (OSError, ValueError):
        try:  # no room up there: the first free one above those in use now
            fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 64)
        except OSError:
            return sock
    import socket

    moved = socket.socket(fileno=fd)
    sock.close()
    return moved


def _serve(
    spec: RunSpec,
    wiring: MpiWiring,
    info: context.RankInfo,
    cache_job: bool = False,
    ranks: list[dict[str, Any]] | None = None,
) -> int:
    """A worker: heartbeats, imports, learn the job from rank 0, run tasks until told to stop."""
    from qshpc.runtime.worker import Heartbeat, catch_stop_signals, preload

    catch_stop_signals()  # a Ctrl-C now: rank 0 cancels the job, this worker waits for its STOP
    sys.argv = spec.program_argv()  # until rank 0 says (what a preloaded module reads)
    for name in (LAUNCH_TOKEN, settings.LAUNCH_END.name, settings.AWAIT_JOB.name):  # rank 0's
        os.environ.pop(name, None)
    beat = Heartbeat(wiring)
    from qshpc.runtime.gone import neighbours

    beat.neighbours = neighbours(ranks, info.rank)  # their end is told to rank 0 at once
    deferred = preload_deferred(spec, info, cache_job)
    if not deferred:
        preload(spec.program)  # while rank 0 prepares the job and starts the program
        _timeline.mark("preloaded")
    job_dir_s, error, prog, argv = _job_from_rank0(wiring)
    if error is not None:
        beat.stop()
        return 2
    # What rank 0's program sees, the tasks see too: a resume's recorded arguments reach
    # rank 0 only (review39 F0: under mpiexec and srun a task run again saw none)
    sys.argv = list(argv)
    add_program_path(Path(prog))
    context.set_worker_job(job_dir_s)  # get_arguments() in a task reads the job's arguments
    from qshpc.runtime.gctune import tune
    from qshpc.runtime.logtee import LogTee
    from qshpc.runtime.worker import serve

    try:
        tee: LogTee | None = LogTee(Path(job_dir_s) / "logs" / f"rank-{info.rank}.out")
    except UserError as exc:  # serve without the log (raising here left rank 0 waiting 30 s)
        print(f"qshpc: warning: {exc}; rank {info.rank} serves without it", file=sys.stderr)
        tee = None

    def preload_now() -> None:
        preload(spec.program)
        tune()  # what the imports made joins the frozen heap, as after a preload at the start
        _timeline.mark("preloaded")

    def leave(why: str, sent: bool) -> None:  # rank 0's LEAVE during a call (qshpc.runtime.midcall)
        from qshpc.runtime.midcall import leave_mid_call

        leave_mid_call(info.rank, info.host, why, tee, sent)

    beat.on_leave = leave
    try:
        tune()
        serve(wiring, info, beat, preload_now if deferred else None)
    except Exception as exc:
        if tee is None or isinstance(exc, QshpcError):  # (those say their one line on exit)
            raise
        # Into the rank's log too, while the tee copies: printed by the interpreter on
        # the way out, after the tee closed, it reached the terminal only (review28 F6).
        import traceback

        print(f"qshpc: rank {info.rank} on host {info.host} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        raise SystemExit(1) from None
    finally:
        if tee is not None:
            tee.close()
    _timeline.mark("served")
    _timeline.write(Path(job_dir_s) / "logs", f"rank-{info.rank}")
    wiring.finalize()
    return 0


def preload_deferred(spec: RunSpec, info: context.RankInfo, cache_job: bool = False) -> bool:
    """Does a worker of this job defer its preload to its first batch? Yes when the
    run turned the cache on for every task (``--cache``, ``--cache-dir``; or
    ``cache_job``: ``QSHPC_CACHE_JOB``, set by the local client and in a Slurm job
    for a program whose ``cache=`` is on) and this
    host's ranks outnumber the cores they may use together (the union of their
    affinity masks, :meth:`qshpc.task.context.RankInfo.crowded`, as the serve loop's).

    A rerun whose calls all hit sends the workers no batch: a worker that
    imported qiskit and Aer meanwhile (0.3-0.5 s of CPU each) only slowed rank
    0's start on cores it shares. A cold run pays the imports at its first
    batch instead of during rank 0's start (benchmarks/RESULTS.md, Session 14
    (cache14)); with a core per rank the imports slow nobody, and the worker
    preloads at its start as without the cache. A job whose cache is on per
    task only (``@distribute_task(cache=True)``) preloads at the start too.
    """
    asked = spec.cache_meta()
    if asked is not None:  # the command line's word wins over the job's (--no-cache)
        cache_job = bool(asked["enabled"])
    return cache_job and info.crowded()


def _tell_workers(wiring: MpiWiring, size: int, message: tuple[Any, ...]) -> None:
    """Rank 0: send the job (or why there is none) to every worker (small, eager sends)."""
    requests = [wiring.world.isend(message, dest=r, tag=TAG_JOB) for r in range(1, size)]
    for request in requests:
        request.wait()


def _job_from_rank0(wiring: MpiWiring) -> tuple[Any, ...]:
    """A worker: wait for rank 0's job message, polling with sleeps (MPICH's receive spins)."""
    status = wiring.status()
    sleep = 0.0
    while True:
        msg = wiring.world.improbe(0, TAG_JOB, status)
        if msg is not None:
            job: tuple[Any, ...] = msg.recv()
            return job
        sleep = min(_MAX_WAIT_SLEEP_S, sleep * 2 or 2e-4)
        time.sleep(sleep)


_MAX_WAIT_SLEEP_S = 0.005
