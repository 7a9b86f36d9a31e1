"""Rank 0's lifecycle: open the store, run the program, drain the workers, finalize.

The program runs in this process's main thread (:mod:`qshpc.runtime.program_main`);
its task calls go to the dispatcher (:mod:`qshpc.runtime.dispatcher`) when there
are worker ranks, else run inline. A requeue under Slurm leaves the store
unfinalized (:mod:`qshpc.runtime.scheduler`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc import _timeline, settings
from qshpc.errors import StoreError, UserError, error_head
from qshpc.jobs.paths import export_data_path
from qshpc.jobs.prepare import LAUNCH_TOKEN, RunSpec, held_claim, release_claim
from qshpc.program import backend
from qshpc.runtime.program_main import (
    cancel_at_start,
    cancel_signal,
    default_signals,
    defer_signals,
    exec_program,
    finalize_program,
    log_the_exit,
    signals_received,
)
from qshpc.runtime.protocol import Wiring
from qshpc.runtime.scheduler import Scheduler
from qshpc.runtime.stopsig import stop_signals
from qshpc.task import context

if TYPE_CHECKING:
    from qshpc.runtime.logtee import LogTee


def _never_started(
    job_dir: Path, exc: StoreError | UserError, stop: Callable[[], None] | None
) -> None:
    """The disk filled before the program started: the job is recorded FAILED, or removed
    (:func:`qshpc.jobs.prepare.never_started`, once ``stop`` stopped the workers); the
    error to raise then says so."""
    from qshpc.jobs.prepare import never_started

    removed = never_started(job_dir, exc, before_removal=stop)
    if removed is not None:
        raise type(exc)(removed) from None


def _note_other_program(meta: dict[str, Any], given: Path) -> None:
    """Say so when the job runs another program than the one named on the command line.

    A job runs the program it was made for (its ``entrypoint``): ``qshpc run other.py
    --resume JOB`` ran JOB's own program without a word (on 3986114).
    """
    entry = meta.get("entrypoint")
    if not entry:
        return
    try:
        same = Path(entry).resolve() == given.resolve()
    except OSError:
        return
    if not same:
        print(
            f"qshpc: note: job {meta.get('id')} runs {entry}, the program it was made for, "
            f"not {given}; to run {given}, start a new job (without --resume/--job-dir)",
            file=sys.stderr,
            flush=True,
        )


def run_job(
    spec: RunSpec,
    job_dir: Path,
    wiring: Wiring | None,
    hosts: list[str] | None,
    ranks: list[dict[str, Any]] | None,
    scheduler: Scheduler | None = None,
    release: Callable[[], None] | None = None,
    stop: Callable[[], None] | None = None,
) -> int:
    """Rank 0: open the store, run the program, finalize. Returns the exit code.

    Args:
        spec: What ``qshpc run`` was asked.
        job_dir: The prepared job directory.
        wiring: How rank 0 reaches the workers, when there are worker ranks (else None).
        hosts: Host of every rank.
        ranks: Every rank's record (rank, host, pid, start_ticks, local_rank, cpus).
        scheduler: The batch system that started the job (Slurm), or None.
        release: Called once every worker has said goodbye, before the store is
            finalized (``MPI_Finalize``: the workers wait in it, spinning, until
            rank 0 calls it too).
        stop: Stops the workers and waits until they ended: called before the folder of
            a job that could not start is removed, so that no worker writes in it after
            (review50 F4: the workers' logs made ``J/logs`` again).
    """
    from qshpc.runtime.logtee import LogTee

    if os.environ.get(LAUNCH_TOKEN):  # `qshpc run`'s own launcher: it passes a hangup on
        from qshpc.runtime import stopsig  # as one (hunt22d: stored 'received SIGTERM')

        stopsig.stop_on_hangup()
    defer_signals()  # a cancel before the program starts or while the job's end is stored
    export_data_path(create=True)  # qiskit-serverless 0.26's DATA_PATH, for the program
    context.set_in_job()
    info = context.rank_info()
    try:
        tee = LogTee(job_dir / "logs" / "rank-0.out")
    except UserError as exc:
        _never_started(job_dir, exc, stop)
        raise
    try:
        return _run_teed(spec, job_dir, wiring, hosts, ranks, scheduler, release, tee, info, stop)
    except BaseException:
        # The CLI prints the error after this returns: restore stderr first, or the
        # message can be lost in the tee's pipe when the process exits (a full disk at
        # the store's opening printed nothing, one run in a few, on 0cd42bd).
        tee.close()
        raise


def _with_folder(ranks: list[dict[str, Any]], job_dir: Path) -> list[dict[str, Any]]:
    """Rank 0's record with its job folder (``folder_id``: device and inode; ``folder``:
    its path): a copy of the folder made while the job runs names this rank 0 too, and
    is told from the job's own by them (review35 F6)."""
    from qshpc.store.lock import folder_id

    if not ranks:
        return ranks
    first = {**ranks[0], "folder_id": folder_id(job_dir), "folder": str(job_dir)}
    return [first, *ranks[1:]]


def _qiskit_version() -> str:
    """Qiskit's version: its ``__version__`` when loaded, else its dist-info folder's name.

    ``importlib.metadata`` costs rank 0 ~15 ms of imports in a program without qiskit.
    """
    loaded = getattr(sys.modules.get("qiskit"), "__version__", None)
    if isinstance(loaded, str):
        return loaded
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("qiskit-") and name.endswith(".dist-info"):
                return name[len("qiskit-") : -len(".dist-info")]
    from importlib.metadata import version

    return version("qiskit")


def _run_teed(
    spec: RunSpec,
    job_dir: Path,
    wiring: Wiring | None,
    hosts: list[str] | None,
    ranks: list[dict[str, Any]] | None,
    scheduler: Scheduler | None,
    release: Callable[[], None] | None,
    tee: LogTee,
    info: context.RankInfo,
    stop: Callable[[], None] | None = None,
) -> int:
    """:func:`run_job`'s body, with rank 0's output going through ``tee``."""
    from qshpc.program import api
    from qshpc.program.session import Session
    from qshpc.store import JobWriter, read_inputs
    from qshpc.store.lock import PIDNS, start_ticks

    # A resume leaves large stored results in the store until the program takes them
    meta, arguments, done, _ = read_inputs(
        job_dir,
        bool(spec.resume),
        settings.RESULT_MEMORY_MAX.get(),
        settings.RESULT_MEMORY_TOTAL.get(),
    )
    _timeline.mark("arguments read")
    if spec.resume:  # (the launcher checked it too; a Slurm job's srun has no launcher)
        from qshpc.jobs.prepare import check_resumed_program

        check_resumed_program(meta, job_dir)
    _note_other_program(meta, spec.program)
    seed = spec.seed if spec.seed is not None else meta.get("seed")
    context.set_job_seed(seed)
    runtime: dict[str, Any] = {
        "mpi_size": info.size,
        "ranks": ranks
        or [
            {
                "rank": 0,
                "host": info.host,
                "pid": os.getpid(),
                "start_ticks": start_ticks(os.getpid()),
                "pidns": PIDNS,
                "local_rank": 0,
                "cpus": info.cpus,
            }
        ],
        "started": time.time(),
        "qiskit_version": _qiskit_version(),
        "python": sys.version.split()[0],
        "slurm": scheduler.run_record() if scheduler is not None else None,
        "resume": bool(spec.resume),
        "seed": seed,
        "launch": os.environ.pop(LAUNCH_TOKEN, None),  # set by `qshpc run`'s own launcher
    }
    runtime["ranks"] = _with_folder(runtime["ranks"], job_dir)
    end_note = os.environ.pop(settings.LAUNCH_END.name, None)  # likewise
    cache = _job_cache(spec, meta)
    if cache.config.enabled or cache.config.dir:
        runtime["cache"] = cache.config.as_dict()
    try:
        writer = JobWriter.open(job_dir, runtime)
    except StoreError as exc:
        _never_started(job_dir, exc, stop)
        raise
    writer.lock = held_claim()
    _take_over_recorded_end(job_dir, bool(spec.resume))
    _timeline.mark("store open")
    session = Session(job_dir, writer, arguments, done, cache)
    api._set_session(session)
    dispatcher = None
    if wiring is not None and info.size > 1:
        from qshpc.runtime.dispatcher import Dispatcher

        pids = [int(r["pid"]) for r in ranks] if ranks else None
        cpus = [int(r.get("cpus") or 1) for r in ranks] if ranks else None
        # Under Slurm a worker's end is seen on its host (srun reports nothing to rank 0);
        # under mpiexec the launcher reports it (qshpc.launch.deaths), as before.
        seen = ranks if scheduler is not None else None
        dispatcher = Dispatcher(
            wiring, session, hosts or [info.host], pids, cpus=cpus, records=seen
        )
        # Measured (benchmarks/root_works.py): a program thread running tasks slows the
        # dispatcher thread (GIL), so rank 0 sleeps unless asked (1 or auto).
        mode = settings.ROOT_WORKS.get()
        if mode in ("1", "auto"):
            given = scheduler is not None and scheduler.cpus_per_task() is not None
            dispatcher.enable_root_work(mode, cores_given=given)
        backend.activate(dispatcher)
    else:
        backend.activate(backend.InlineBackend(session))
    from qshpc.runtime.gctune import tune

    tune()
    session.program_started()
    _timeline.mark("program started")
    try:
        state, error = exec_program(
            Path(meta.get("entrypoint") or spec.program), spec.program_argv(), scheduler
        )
    finally:
        session.program_ended()
    _timeline.mark("program ended")
    if state in ("REQUEUE", "REQUEUED"):
        _requeue(state, error or "", meta, dispatcher, session, writer, tee, scheduler)
    try:
        if dispatcher is not None:
            _shut_down(dispatcher, state)
    except Exception as exc:
        cause = str(exc.__cause__ or exc)  # e.g. the store's "no space left on device: ..."
        if cause not in (error or ""):
            state, error = "FAILED", f"{error or ''}\nthe dispatcher failed: {cause}".lstrip()
        else:
            state = "FAILED"
    if state == "FAILED" and error and dispatcher is not None and dispatcher.lost:
        error = with_resume(error, meta, job_dir, session)
    # Results rank 0 ran itself (inline, root work): their last writes, while they
    # progress; a Ctrl-C (a signal received from now on) stops the wait.
    signals_before = signals_received()
    cache.finish(stop=lambda: signals_received() > signals_before)
    from qshpc.store.space import lost_output as output_lost

    lost_output = output_lost()
    if lost_output and lost_output not in (error or ""):
        state, error = "FAILED", f"{error}\n{lost_output}" if error else lost_output
    _timeline.mark("workers stopped")
    if (
        release is not None
        and dispatcher is not None
        and not (dispatcher.lost or dispatcher.abandoned or state == "CANCELED")
    ):
        release()
    try:
        try:
            session.sync(force=True)
        except StoreError:
            if writer.disk_full is None and not lost_output:
                raise  # a full disk: finalize records FAILED in the space kept for it
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
        release_claim()
        os._exit(1)  # the ranks cannot finalize a store that is gone
    release_claim()  # the store is final: the next run may start
    _timeline.mark("store final")
    unfolded = _unfolded_line(meta, job_dir, writer.unfolded)
    if end_note and not unfolded:
        tell_launcher(end_note, str(runtime["launch"]), state, error)
    api._set_session(None)
    # From now on (a __del__ or an atexit handler of the program's) calls run inline, as
    # in plain python: the dispatcher is gone, and a get() on its queue waited forever.
    backend.activate(None)
    tee.close()
    _summary(meta, job_dir, state, error, session)
    code = 0 if state == "SUCCEEDED" else 1
    if unfolded:  # said before the launcher may leave (it exits at the note)
        _say(unfolded)
        code = code or 1
        if end_note:
            tell_launcher(end_note, str(runtime["launch"]), state, error, unfolded)
    _timeline.write(job_dir / "logs", "rank-0")
    if state == "CANCELED":
        code = 128 + (cancel_signal() or signal.SIGTERM)  # 130 after Ctrl-C, as shells expect
    if dispatcher is not None and (dispatcher.lost or dispatcher.abandoned):
        # Lost or busy ranks can make MPI_Finalize wait forever: the store is final, leave now
        # (what the exit's atexit handlers would do for the program first).
        finalize_program()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    default_signals()
    log_the_exit(job_dir / "logs" / "rank-0.out")  # what the program prints at the exit
    return code


def with_resume(error: str, meta: dict[str, Any], job_dir: Path, session: Any) -> str:
    """``error`` of a job that FAILED for a lost worker, its line saying what is kept and how
    to resume (as the local launcher's report of a rank that died does).

    Under Slurm a worker that died is lost at its heartbeat timeout, and the error was the
    ``WorkerLostError`` alone: nothing said that the finished results are kept, nor
    ``qshpc submit --resume JOB`` (review44 F2). The words go on the line that
    ``errors.error_head`` picks, the one ``qshpc status`` and the run's last line show: the
    exception's line, not a note, a message's second line or a hint after it.
    """
    if "WorkerLostError" not in error or "finished task results are kept" in error:
        return error
    from qshpc.jobs.paths import job_ref
    from qshpc.jobs.postmortem import resume_command

    kept = len(session.done) - session.redone + session.executed + session.cached
    return on_head_line(
        error,
        f"; {kept} finished task results are kept in the store; "
        f"`{resume_command(meta, job_ref(job_dir))}` runs only the unfinished tasks",
    )


def on_head_line(error: str, words: str) -> str:
    """``error`` with ``words`` at the end of the line :func:`errors.error_head` shows:
    the last line that, so ended, makes that head end with them (tried among the lines
    that hold the head's text: one or two); else the first line that holds it, or the last
    line but the hints (a head cut at its length limit shows no more). Tried, not
    computed, so that it follows ``error_head`` as that changes."""
    lines = error.rstrip().splitlines()
    head = error_head(error)
    shown = [
        i for i, line in enumerate(lines) if line.strip() and not line.startswith("qshpc: hint: ")
    ]
    if not shown:
        return error
    holds = [i for i in reversed(shown) if lines[i].strip() in head or head[:200] in lines[i]]
    for i in holds[:20]:
        tried = [*lines[:i], lines[i] + words, *lines[i + 1 :]]
        if error_head("\n".join(tried)).endswith(words):
            return "\n".join(tried)
    at = holds[-1] if holds else shown[-1]
    return "\n".join([*lines[:at], lines[at] + words, *lines[at + 1 :]])


def _unfolded_line(meta: dict[str, Any], job_dir: Path, why: Exception | None) -> str | None:
    """What to tell the user when ``job.h5`` could not be completed (None when it was).

    hunt21b: with the job folder made read-only while the job ran, the run ended with
    "cannot finalize ... Free space ... or make it writable", no SUCCEEDED/FAILED line,
    and exit 0 (2 with ``job.h5`` made unreadable) for the same state.
    """
    if why is None:
        return None
    from qshpc.store.layout import JOURNAL_FILE

    cause = why.__cause__
    jid = meta.get("id")
    if isinstance(cause, MemoryError):
        return (
            f"qshpc: error: job {jid}'s store {job_dir / 'job.h5'} could not be completed: "
            "qshpc ran out of memory folding its journal in; its final state and result are "
            f"kept whole in {job_dir / JOURNAL_FILE}: `qshpc status {jid}` completes job.h5 "
            "(in a process with the memory free)"
        )
    reason = getattr(cause, "strerror", None) or str(cause or why)
    return (
        f"qshpc: error: job {jid}'s store {job_dir / 'job.h5'} could not be completed "
        f"({reason}): its final state and result are kept whole in "
        f"{job_dir / JOURNAL_FILE}; give yourself back write permission there "
        f"(chmod -R u+rw {job_dir}), then `qshpc status {jid}` completes job.h5"
    )


def _say(line: str) -> None:
    """``line`` on stderr (nobody may read it: the store has the state)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def tell_launcher(
    path: str, token: str | None, state: str, error: str | None, unfolded: str | None = None
) -> None:
    """Write the job's end to the file ``qshpc run``'s launcher gave (the store is final now).

    The launcher then takes its exit code from this note instead of opening the
    store (importing h5py and checking the file's seal: 0.2-0.4 s of every
    command's end on 2 cores). The file is the launcher's own (made 0600 before
    mpiexec started); it is only written into, never created, and nothing here
    raises: without a note the launcher reads the store, as before.
    """
    import json

    end = {"token": token, "state": state, "error": error}
    if unfolded:  # the launcher then exits 1 even for SUCCEEDED
        end["unfolded"] = unfolded
    note = json.dumps(end).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, note)
    except OSError:
        pass
    finally:
        os.close(fd)


def _job_cache(spec: RunSpec, meta: dict[str, Any]) -> Any:
    """The job's cache: as the job was created, with what ``qshpc run`` asked on top."""
    from qshpc.cache.jobcache import CacheConfig, JobCache

    config = dict(meta.get("cache") or {})
    asked = spec.cache_meta()
    if asked is not None:
        config["enabled"] = asked["enabled"]
        if asked["dir"] is not None:
            config["dir"] = asked["dir"]
    # Opened at the first lookup: a folder that cannot be used warns and the tasks run.
    cache = JobCache(CacheConfig.from_dict(config), meta.get("id"))
    if cache.config.enabled:
        cache.prepare()
        from qshpc.aer import results  # noqa: F401  (what a hit of the Sampler's rebuilds)
    return cache


def _take_over_recorded_end(job_dir: Path, resume: bool) -> None:
    """An end recorded beside the store (``status.json``) by a launcher or a reader.

    A resumed run supersedes the previous run's (FAILED by a post-mortem, or
    CANCELED): ``qshpc status`` showed FAILED while the resumed run ran. A new
    run that was cancelled before it started (``Job.stop()``, ``qshpc cancel``
    of a QUEUED job) is cancelled at once, the workers stopped as usual.
    """
    from qshpc.jobs.paths import STATUS_OVERRIDE, read_override

    override = read_override(job_dir)
    if override is None:
        return
    if resume:
        try:
            (job_dir / STATUS_OVERRIDE).unlink()
        except OSError:
            pass
    elif override.get("state") == "CANCELED":
        cancel_at_start()


#: Seconds the workers get to report the calls in flight when the job SUCCEEDED or
#: was CANCELED (the program no longer wants them; Slurm's SIGKILL follows a cancel).
END_GRACE_S = 2.0


def _shut_down(dispatcher: Any, state: str) -> None:
    """Stop the workers at the end of the job, storing the results of calls in flight.

    Calls the program never waited for are not needed once it ended: those not
    yet sent are cancelled; those running get ``END_GRACE_S`` (a job that
    SUCCEEDED or was CANCELED) or ``QSHPC_DRAIN_S`` (one that FAILED: their
    results serve a resume) to report. A call still running then is abandoned
    (its record says so) and its worker is left to the MPI launcher to end.
    A SIGINT/SIGTERM meanwhile cuts the wait short.
    """
    if state == "SUCCEEDED":
        drain, why = END_GRACE_S, "the program ended (the job SUCCEEDED)"
    elif state == "CANCELED":
        drain, why = END_GRACE_S, "the job was cancelled"
    else:
        drain, why = settings.DRAIN_S.get(), f"the job {state}"

    started = time.monotonic()

    def hurry(signum: int, frame: Any) -> None:
        # A Ctrl-C reaches rank 0 twice within milliseconds (from the launcher and
        # from mpiexec): only a later one is the user asking not to wait.
        if state != "CANCELED" or time.monotonic() - started > 1.0:
            dispatcher.hurry()

    old = {s: signal.signal(s, hurry) for s in stop_signals() if s != signal.SIGHUP}
    try:
        dispatcher.shutdown(abort=True, drain_s=drain, why=why)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _requeue(
    state: str,
    why: str,
    meta: dict[str, Any],
    dispatcher: Any,
    session: Any,
    writer: Any,
    tee: Any,
    scheduler: Scheduler | None,
) -> None:
    """Rank 0, Slurm job submitted with --requeue: flush the store, requeue, leave unfinalized.

    ``REQUEUE``: the time limit is near, rank 0 asks Slurm to requeue the job;
    ``REQUEUED``: Slurm already did. The store keeps every committed result and
    stays RUNNING (Slurm's PENDING shows as QUEUED); the next start resumes.
    If Slurm refuses the requeue, the job ends FAILED, saying why.
    """
    from qshpc.program import api

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # Slurm's kill of the old run follows the requeue
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    if dispatcher is not None:
        try:
            dispatcher.shutdown(abort=True, drain_s=2.0)
        except Exception:
            pass  # the store holds every committed result; the ranks end with the allocation
    session.sync(force=True)
    note = f"requeued: {why}; resumes from the stored results when Slurm starts it again"
    writer.set_status(note)
    failed = scheduler.requeue() if state == "REQUEUE" and scheduler is not None else None
    if failed is not None:
        error = f"{why}, and the job could not be requeued: {failed}"
        writer.finalize("FAILED", error)
        print(f"qshpc: job {meta.get('id')} FAILED: {error}", file=sys.stderr)
        code = 1
    else:
        writer.close()
        print(
            f"qshpc: job {meta.get('id')} {note} ({session.executed} tasks run, "
            f"{len(session.done) - session.redone + session.executed} results stored)",
            file=sys.stderr,
        )
        code = 0
    api._set_session(None)
    tee.close()
    sys.stdout.flush()
    sys.stderr.flush()
    release_claim()
    os._exit(code)  # the workers are stopped or about to be killed: no MPI_Finalize


def _summary(
    meta: dict[str, Any], job_dir: Path, state: str, error: str | None, session: Any
) -> None:
    out = sys.stdout if state == "SUCCEEDED" else sys.stderr
    try:
        _print_summary(meta, job_dir, state, error, session, out)
    except (OSError, ValueError):  # nobody reads it (`qshpc run ... | head -1`): the store has it
        from qshpc.runtime.logtee import to_null

        to_null(out)


def _print_summary(
    meta: dict[str, Any], job_dir: Path, state: str, error: str | None, session: Any, out: Any
) -> None:
    from qshpc.store import JOB_FILE

    parts = [f"{session.executed} tasks run"]
    if session.cached:
        parts.append(f"{session.cached} from the cache")
    if session.skipped:
        parts.append(f"{session.skipped} reused from the store")
    if session.redone:
        parts.append(f"{session.redone} run again: the store did not hold their results exactly")
    if session.failed:
        parts.append(f"{session.failed} failed attempts")
    print(f"qshpc: job {meta.get('id')} {state} ({', '.join(parts)})", file=out)
    print(f"qshpc: store {job_dir / JOB_FILE}", file=out)
    if state == "SUCCEEDED" and not session.result_saved:
        print("qshpc: the program never called save_result: the job has no result", file=out)
    if error and state != "SUCCEEDED":
        from qshpc.errors import error_head
        from qshpc.jobs.paths import job_ref
        from qshpc.text import error_line, shown

        # (a hint after the traceback, program_main.import_hint, is said once, in the
        # rank's log: error_head leaves it out, review44 F9)
        print(f"qshpc: {shown(error_line(error_head(error) or state))}", file=out)
        print(
            f"qshpc: logs in {job_dir / 'logs'}; `qshpc status {job_ref(job_dir)}` shows the error",
            file=out,
        )
    out.flush()
