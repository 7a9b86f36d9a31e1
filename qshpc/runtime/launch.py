"""``qshpc run``: start the ranks (or join the ones an MPI launcher started) and run a program.

Rank 0 executes the program file as ``__main__``; ranks 1..N-1 serve its
distributed tasks. Without an MPI launcher, ``qshpc run`` starts the ranks
itself with the ``mpiexec`` of the MPI installed from PyPI (the embedded local
default), or runs everything in one process with ``--workers 0``.
"""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from qshpc.errors import StoreError, UserError
from qshpc.runtime import backend, context, requeue
from qshpc.runtime.mpi import launched_by_mpi
from qshpc.runtime.prepare import RunSpec, prepare_job


class Cancelled(BaseException):
    """Raised in the program's thread when the job receives SIGTERM/SIGINT."""


def default_workers() -> int:
    """Worker ranks for the local default: one per core."""
    return max(1, len(os.sched_getaffinity(0)))


def find_mpiexec() -> str:
    """The ``mpiexec`` next to this Python (the PyPI MPI), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if found is None:
        raise UserError(
            "no mpiexec found: install the MPI runtime (`pip install mpich`), "
            "or run in one process with `qshpc run --workers 0`"
        )
    return found


def run(spec: RunSpec, workers: int | None) -> int:
    """Run a program as a job; return the process exit code (0 when SUCCEEDED)."""
    if launched_by_mpi():
        return _run_rank(spec)
    n = default_workers() if workers is None else workers
    if n < 0:
        raise UserError(f"--workers must be >= 0, got {n}")
    if n == 0:
        job_dir = prepare_job(spec)
        return _run_job(spec, job_dir, None, None, None)
    return _spawn(spec, n)


def _spawn(spec: RunSpec, workers: int) -> int:
    job_dir = prepare_job(spec)  # fail fast, before starting any rank
    cmd = [find_mpiexec(), "-n", str(workers + 1)]
    cmd += [sys.executable, "-m", "qshpc", "run"]
    cmd += [str(spec.program), "--job-dir", str(job_dir)]
    if spec.seed is not None:
        cmd += ["--seed", str(spec.seed)]
    if spec.resume:
        cmd += ["--resume", str(job_dir)]
    cmd += ["--", *spec.program_args]
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail: list[bytes] = []
    rank0: list[int] = []

    def forward(signum: int, frame: Any) -> None:  # cancel: rank 0 stores CANCELED and exits
        target = rank0[0] if rank0 else proc.pid
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, tail), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, tail), daemon=True),
    ]
    for t in pumps:
        t.start()
    try:
        code = _watch(proc, job_dir, rank0)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    for t in pumps:
        t.join(timeout=5)
    if code != 0 and not (job_dir / "job.h5").is_file():
        if b"was removed while it ran" not in b"".join(tail):  # else rank 0 said so
            print(
                f"qshpc: job FAILED: its job directory {job_dir} was removed while it ran "
                "(nothing of it is kept)",
                file=sys.stderr,
            )
        return 1
    if code != 0:
        _mark_dead(job_dir, b"".join(tail).decode(errors="replace"), code)
    return code


def _pump(src: Any, dst: Any, tail: list[bytes]) -> None:
    """Forward a child's output as it comes; keep the last lines for the post-mortem."""
    for line in iter(src.readline, b""):
        dst.write(line)
        dst.flush()
        tail.append(line)
        if len(tail) > 400:
            del tail[:200]


def _watch(proc: subprocess.Popen[bytes], job_dir: Path, rank0: list[int]) -> int:
    """Wait for mpiexec: show progress from the store, learn rank 0's pid, end a lingering mpiexec.

    Progress: a plain line on stderr every ``QSHPC_PROGRESS_S`` seconds (5;
    0 turns it off) with tasks done, failed, the rate and the sub-status, read
    from the store as ``qshpc status --watch`` does.
    """
    from qshpc.store import JobReader

    every = float(os.environ.get("QSHPC_PROGRESS_S", "5"))
    next_line = time.monotonic() + every
    meter: Any = None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if every > 0 and time.monotonic() >= next_line:
            next_line = time.monotonic() + every
            meter = _progress_line(job_dir, meter)
        if not rank0:
            try:
                with JobReader.open(job_dir) as r:
                    ranks = r.meta().get("ranks") or []
                if ranks:
                    rank0.append(int(ranks[0]["pid"]))
            except Exception:
                pass
            continue
        try:
            os.kill(rank0[0], 0)
        except ProcessLookupError:
            try:
                return proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.terminate()
                return proc.wait()


def _progress_line(job_dir: Path, meter: Any) -> Any:
    """Print one progress line for a running job; return the rate meter to reuse."""
    from qshpc.progress import RateMeter, format_line, snapshot
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            snap = snapshot(r.meta())
    except Exception:
        return meter
    meter = meter or RateMeter()
    meter.add(snap.now, snap.done + snap.failed)
    if snap.state == "RUNNING":
        print(f"qshpc: {format_line(snap, meter.rate())}", file=sys.stderr, flush=True)
    return meter


def _mark_dead(job_dir: Path, output: str, code: int) -> None:
    """Record FAILED, naming the dead rank and the tasks it held, when the ranks died unfinalized."""
    from qshpc.jobs import mark_terminal
    from qshpc.postmortem import describe
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
            finished = {t["task_id"] for t in r.tasks()}
    except Exception:
        meta, finished = {}, set()
    if meta.get("state") in (None, "QUEUED", "RUNNING"):
        why = describe(job_dir, meta, finished, output)
        mark_terminal(job_dir, "FAILED", f"the MPI ranks exited with code {code}: {why}")
        from qshpc.store import recover

        try:
            recover(job_dir)  # job.h5 alone now holds every committed record
        except Exception as exc:  # the directory may be gone or full: the journal stays
            print(f"qshpc: could not fold the journal into job.h5: {exc}", file=sys.stderr)
        print(f"qshpc: job {meta.get('id', job_dir.name)} FAILED: {why}", file=sys.stderr)


def _run_rank(spec: RunSpec) -> int:
    from qshpc.runtime.mpi import start

    mpi, comm, info = start()
    context.set_rank_info(info)
    job_dir: Path | None = None
    error: str | None = None
    failure: BaseException | None = None
    if info.rank == 0:
        try:
            job_dir = prepare_job(spec)
        except UserError as exc:
            error = str(exc)
        except BaseException as exc:  # tell the workers, or they wait in the bcast forever
            error, failure = f"rank 0 could not prepare the job: {exc!r}", exc
    else:
        from qshpc.runtime.worker import preload

        preload()  # while rank 0 prepares the job, so the first task need not wait for it
    job_dir_s, error, prog = comm.bcast(
        (str(job_dir) if job_dir else None, error, str(spec.program.resolve())), root=0
    )
    if error is not None:
        if failure is not None:
            raise failure
        if info.rank == 0:
            raise UserError(error)
        return 2
    hosts = [i.host for i in comm.allgather(info)]
    ranks = comm.gather(
        {
            "rank": info.rank,
            "host": info.host,
            "pid": os.getpid(),
            "local_rank": info.local_rank,
            "cpus": info.cpus,
        },
        root=0,
    )
    _add_program_path(Path(prog))
    if info.rank != 0:
        from qshpc.runtime.logtee import LogTee
        from qshpc.runtime.worker import serve

        tee = LogTee(Path(job_dir_s) / "logs" / f"rank-{info.rank}.out")
        try:
            serve(mpi, comm)
        finally:
            tee.close()
        mpi.Finalize()
        return 0
    code = _run_job(spec, Path(job_dir_s), (mpi, comm), hosts, ranks)
    # Finalize here, not at interpreter exit: whatever hosts this process
    # afterwards (submitit pickles a result and may leave with os._exit) must not
    # leave the workers waiting in MPI_Finalize's PMI barrier.
    mpi.Finalize()
    return code


def _add_program_path(program: Path) -> None:
    folder = str(program.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _run_job(
    spec: RunSpec,
    job_dir: Path,
    mpi_comm: tuple[Any, Any] | None,
    hosts: list[str] | None,
    ranks: list[dict[str, Any]] | None,
) -> int:
    """Rank 0: open the store, run the program, finalize. Returns the exit code."""
    from importlib.metadata import version

    from qshpc import program as api
    from qshpc.runtime.logtee import LogTee
    from qshpc.runtime.session import Session
    from qshpc.store import JobReader, JobWriter, perms

    info = context.rank_info()
    tee = LogTee(job_dir / "logs" / "rank-0.out")
    trusted = perms.private_to_me(job_dir / "job.h5")
    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
            arguments = r.arguments(allow_pickle=trusted)
            done = r.done_records(allow_pickle=trusted) if spec.resume else {}
    except BaseException:
        # The CLI prints the error after this returns: restore stderr first, or
        # the message can be lost in the tee's pipe when the process exits.
        tee.close()
        raise
    seed = spec.seed if spec.seed is not None else meta.get("seed")
    context.set_job_seed(seed)
    runtime = {
        "mpi_size": info.size,
        "ranks": ranks
        or [{"rank": 0, "host": info.host, "pid": os.getpid(), "local_rank": 0, "cpus": info.cpus}],
        "started": time.time(),
        "qiskit_version": version("qiskit"),
        "python": sys.version.split()[0],
        "slurm": {k: v for k, v in os.environ.items() if k in _SLURM_KEYS} or None,
        "resume": bool(spec.resume),
        "seed": seed,
    }
    writer = JobWriter.open(job_dir, runtime)
    session = Session(job_dir, writer, arguments, done)
    api._set_session(session)
    dispatcher = None
    if mpi_comm is not None and info.size > 1:
        from qshpc.runtime.dispatcher import Dispatcher

        pids = [int(r["pid"]) for r in ranks] if ranks else None
        dispatcher = Dispatcher(mpi_comm[0], mpi_comm[1], session, hosts or [info.host], pids)
        # Measured (benchmarks/root_works.py): a program thread running tasks slows the
        # dispatcher thread (GIL), so rank 0 sleeps unless asked (1 or auto).
        mode = os.environ.get("QSHPC_ROOT_WORKS", "0")
        if mode in ("1", "auto"):
            dispatcher.enable_root_work(mode)
        backend.activate(dispatcher)
    else:
        backend.activate(backend.InlineBackend(session))
    from qshpc.runtime.gctune import tune

    tune()
    state, error = _exec_program(Path(meta.get("entrypoint") or spec.program), spec.program_args)
    if state in ("REQUEUE", "REQUEUED"):
        _requeue(state, error or "", meta, job_dir, dispatcher, session, writer, tee)
    try:
        if dispatcher is not None:
            # Cancelled: Slurm's SIGKILL follows within KillWait, so drain briefly.
            drain = 2.0 if state == "CANCELED" else float(os.environ.get("QSHPC_DRAIN_S", "60"))
            dispatcher.shutdown(abort=state != "SUCCEEDED", drain_s=drain)
    except Exception as exc:
        state, error = "FAILED", f"{error or ''}\nthe dispatcher failed: {exc}"
    try:
        session.sync()
        writer.finalize(state, error)
    except StoreError:
        if (job_dir / "job.h5").is_file():
            raise
        tee.close()
        print(
            f"qshpc: job {meta.get('id')} FAILED: its job directory {job_dir} was removed "
            "while it ran (nothing of it is kept)",
            file=sys.stderr,
        )
        sys.stderr.flush()
        os._exit(1)  # the ranks cannot finalize a store that is gone
    api._set_session(None)
    tee.close()
    _summary(meta, job_dir, state, error, session)
    code = 0 if state == "SUCCEEDED" else 1
    if dispatcher is not None and (dispatcher.lost or dispatcher.abandoned or state == "CANCELED"):
        # Lost or busy ranks can make MPI_Finalize wait forever: the store is final, leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _requeue(
    state: str,
    why: str,
    meta: dict[str, Any],
    job_dir: Path,
    dispatcher: Any,
    session: Any,
    writer: Any,
    tee: Any,
) -> None:
    """Rank 0, Slurm job submitted with --requeue: flush the store, requeue, leave unfinalized.

    ``REQUEUE``: the time limit is near, rank 0 asks Slurm to requeue the job;
    ``REQUEUED``: Slurm already did. The store keeps every committed result and
    stays RUNNING (Slurm's PENDING shows as QUEUED); the next start resumes.
    If Slurm refuses the requeue, the job ends FAILED, saying why.
    """
    from qshpc import program as api

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # Slurm's kill of the old run follows the requeue
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    if dispatcher is not None:
        try:
            dispatcher.shutdown(abort=True, drain_s=2.0)
        except Exception:
            pass  # the store holds every committed result; the ranks end with the allocation
    session.sync()
    note = f"requeued: {why}; resumes from the stored results when Slurm starts it again"
    writer.set_status(note)
    failed = requeue.requeue_self() if state == "REQUEUE" else None
    if failed is not None:
        error = f"{why}, and the job could not be requeued: {failed}"
        writer.finalize("FAILED", error)
        print(f"qshpc: job {meta.get('id')} FAILED: {error}", file=sys.stderr)
        code = 1
    else:
        writer.close()
        print(
            f"qshpc: job {meta.get('id')} {note} ({session.executed} tasks run, "
            f"{len(session.done) + session.executed} results stored)",
            file=sys.stderr,
        )
        code = 0
    api._set_session(None)
    tee.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the workers are stopped or about to be killed: no MPI_Finalize


_SLURM_KEYS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_NODELIST",
    "SLURM_NTASKS",
    "SLURM_CLUSTER_NAME",
    "SLURM_RESTART_COUNT",
)


def _exec_program(program: Path, argv: list[str]) -> tuple[str, str | None]:
    """Run the program file as ``__main__``; return ``(state, error text)``."""

    def on_signal(signum: int, frame: Any) -> None:
        again = requeue.reason(signum)
        if again is not None:
            raise again
        raise Cancelled(f"received {signal.Signals(signum).name}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
    saved_argv = sys.argv
    sys.argv = [str(program), *argv]
    _add_program_path(program)
    try:
        runpy.run_path(str(program), run_name="__main__")
        return "SUCCEEDED", None
    except SystemExit as exc:
        if exc.code in (None, 0):
            return "SUCCEEDED", None
        return "FAILED", f"the program called sys.exit({exc.code!r})"
    except Cancelled as exc:
        return "CANCELED", f"job cancelled: {exc}"
    except requeue.Requeue as exc:
        return ("REQUEUE" if exc.ask_slurm else "REQUEUED"), exc.why
    except BaseException as exc:
        text = _user_traceback(exc, program)
        sys.stderr.write(text)
        return "FAILED", text
    finally:
        sys.argv = saved_argv
        for s, h in old.items():
            signal.signal(s, h)


def _user_traceback(exc: BaseException, program: Path) -> str:
    """The traceback from the program's frames on (qshpc's own launch frames dropped).

    For qshpc's own errors (a bad call, a store that went away) the frames inside
    qshpc are dropped too: the program's lines say where, the message says what.
    """
    from qshpc.errors import QshpcError

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != str(program):
        tb = tb.tb_next
    if isinstance(exc, QshpcError) and tb is not None:
        inside = str(Path(__file__).resolve().parents[1]) + os.sep
        frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(inside)]
        return (
            "Traceback (most recent call last):\n"
            + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(type(exc), exc))
        )
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _summary(
    meta: dict[str, Any], job_dir: Path, state: str, error: str | None, session: Any
) -> None:
    from qshpc.store import JOB_FILE

    out = sys.stdout if state == "SUCCEEDED" else sys.stderr
    parts = [f"{session.executed} tasks run"]
    if session.skipped:
        parts.append(f"{session.skipped} reused from the store")
    if session.failed:
        parts.append(f"{session.failed} failed attempts")
    print(f"qshpc: job {meta.get('id')} {state} ({', '.join(parts)})", file=out)
    print(f"qshpc: store {job_dir / JOB_FILE}", file=out)
    if state == "SUCCEEDED" and not session.result_saved:
        print("qshpc: the program never called save_result: the job has no result", file=out)
    if error and state != "SUCCEEDED":
        last = error.strip().splitlines()[-1] if error.strip() else state
        print(f"qshpc: {last}", file=out)
        print(
            f"qshpc: logs in {job_dir / 'logs'}; `qshpc status {meta.get('id')}` shows the error",
            file=out,
        )
    out.flush()
