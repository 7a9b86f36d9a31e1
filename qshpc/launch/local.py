"""The local launcher: ``qshpc run`` outside an MPI launcher starts the ranks itself.

Without an MPI launcher, ``qshpc run`` starts ``mpiexec -n WORKERS+1`` of the
MPI installed from PyPI (the embedded local default) and stays as its parent:
it forwards output and signals, prints progress read from the store, and
records FAILED (naming the rank that died first and the tasks it held) when the
ranks die before finalizing the store, or CANCELED when it was itself told to
stop. Its exit code comes from how the job ended, never from mpiexec's: 0
SUCCEEDED, 1 FAILED, 128+signal CANCELED (130 after Ctrl-C, 143 after SIGTERM
or ``qshpc cancel``), 2 refused. ``--workers 0`` runs everything in this process.
Under ``mpiexec``/``srun``, :func:`run` joins the ranks the launcher started
(:mod:`qshpc.runtime.start`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from qshpc import _timeline, settings
from qshpc.errors import StoreError, UserError
from qshpc.jobs.endnote import read_end_note
from qshpc.jobs.prepare import (
    LAUNCH_TOKEN,
    RunSpec,
    check_claimable,
    claim_job,
    expand_home,
    never_started,
    plan_job,
    prepare_job,
)
from qshpc.launch import early
from qshpc.launch.deaths import Deaths, rank_pids
from qshpc.launch.forward import Forwarder, note_not_shown, say_if_read
from qshpc.runtime import forkserver
from qshpc.runtime.mpi import launched_by_mpi, local_env, note_workers_ignored
from qshpc.runtime.scheduler import Scheduler


def default_workers() -> int:
    """Worker ranks for the local default: one per core."""
    from qshpc.launch.workers import cores

    return cores()


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


def run(spec: RunSpec, workers: int | None, scheduler: Scheduler | None = None) -> int:
    """Run a program as a job; return the process exit code (0 when SUCCEEDED).

    Args:
        spec: What ``qshpc run`` was asked.
        workers: Worker ranks to start (None: one per core; 0: all in this process).
            Ignored under an MPI launcher, which started the ranks.
        scheduler: The batch system this runs in (Slurm's, from
            :func:`qshpc.submit.slurm.scheduler`), or None.
    """
    if launched_by_mpi():
        from qshpc.runtime.start import run_rank

        note_workers_ignored(workers)
        return run_rank(spec, scheduler)
    _refuse_srun_without_mpi(scheduler)
    n = default_workers() if workers is None else workers
    if n < 0:
        raise UserError(f"--workers must be >= 0, got {n}")
    from qshpc.launch.workers import check

    check(n)  # (before mpiexec: a typo such as --workers 100000 forks no Pythons)
    if n == 0:
        from qshpc.runtime import stopsig
        from qshpc.runtime.rank0 import run_job
        from qshpc.task import context

        # This process is the whole job: a hangup cancels it, and a cancel from now on is
        # remembered (rank 0 cancels the program as it would start), never a death that
        # left the job QUEUED or 'claimed but never started' (on 2dca53c).
        stopsig.stop_on_hangup()
        stopsig.defer_signals()

        job_dir = prepare_job(spec)
        cpus = scheduler.cpus_per_task() if scheduler is not None else None
        if cpus is not None:
            context.set_rank_info(context.RankInfo(cpus=context.cores_for_rank(1, cpus)))
        try:
            claim_job(spec, job_dir, scheduler.run_record() if scheduler is not None else None)
        except StoreError as exc:  # a full disk, say: FAILED, or removed if it ran nothing
            removed = never_started(job_dir, exc, locked=False)
            if removed is not None:
                raise StoreError(removed) from None
            raise
        return run_job(spec, job_dir, None, None, None, scheduler)
    return _spawn(spec, n, scheduler)


def _refuse_srun_without_mpi(scheduler: Scheduler | None) -> None:
    """Refuse to start ranks here when ``srun`` started several tasks without an MPI plugin.

    Each task would see no MPI launcher and start its own ``mpiexec``: one job per
    task, and under Slurm each ``mpiexec`` starts its proxy with a nested ``srun``
    that waits for the step's CPUs forever (hunt12d: ``srun -n 2 python -m qshpc
    run`` stayed RUNNING, with no output, until its time limit).
    """
    tasks = scheduler.step_tasks() if scheduler is not None else 1
    if tasks > 1:
        raise UserError(
            f"srun started {tasks} tasks but no MPI: add --mpi=pmi2 to srun "
            "(srun --mpi=pmi2 python -m qshpc run ...), or your site's MPI plugin"
        )


def _local_launcher(env: dict[str, str], scheduler: Scheduler | None) -> None:
    """Have ``mpiexec`` start every rank on this machine, also inside a Slurm job.

    Under Slurm, hydra's default launcher is ``srun``: in a batch script without
    ``srun`` (or under ``srun -n 1``) its proxies wait in a nested step for CPUs
    the job already holds, or start on nodes this run never counted cores of
    (hunt12d: a batch script's ``python -m qshpc run`` hung until its time limit).
    ``qshpc run``'s own launcher means ranks here; a value set already wins.
    """
    if scheduler is not None:
        for name, value in scheduler.local_launch_env().items():
            env.setdefault(name, value)


def early_command(entry: str, job_dir: Path, workers: int, env: dict[str, str]) -> list[str]:
    """The command that starts a client's job's ranks, for its launcher to start first.

    ``LocalClient.run`` starts ``qshpc run ENTRY --job-dir JOB_DIR --workers N``
    with these words in front (:mod:`qshpc.cli.nosite`): the launcher starts
    them before it imports the rest of qshpc (:mod:`qshpc.launch.early`), then
    goes on as :func:`_spawn` (:func:`_adopt`). ``env`` (the launcher's, which
    mpiexec inherits) gets what :func:`_spawn` gives the ranks. Empty (the
    launcher starts the ranks itself) with no worker ranks, under an MPI
    launcher, or without mpiexec (the launcher says so); not for a batch
    system's job (the client does not ask then: its ranks need its settings).
    """
    if workers < 1 or launched_by_mpi():
        return []
    try:
        mpiexec = find_mpiexec()
    except UserError:
        return []
    token = os.urandom(8).hex()  # rank 0 records it: which run in the store is this one
    env[LAUNCH_TOKEN] = token
    for name, value in local_env().items():  # the ranks' MPI (ofi for the PyPI mpich)
        env.setdefault(name, value)  # the user's own setting wins
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env[settings.LAUNCH_WATCH.name] = Deaths.name(token)
    cmd = [mpiexec, "-print-all-exitcodes", "-n", str(workers + 1)]
    cmd += [sys.executable, "-m", "qshpc", "run", entry, "--job-dir", str(job_dir.resolve())]
    cmd += ["--"]
    plan = forkserver.fork_plan(Path(entry), None, workers + 1, env)
    if plan is not None:  # the launcher starts the server first (early.spawn)
        env[settings.FORK_PLAN.name] = forkserver.encode_plan(token, workers + 1, *plan)
    return cmd


def _adopt(spec: RunSpec, workers: int, started: early.Started, signals: _Signals) -> int:
    """:func:`_spawn` for ranks this launcher started first (:func:`early_command`)."""
    signals.absorb(started.caught)
    try:
        job_dir, job_id = plan_job(spec)
        if job_id is None:  # (always: the client made the job) another live run is refused
            check_claimable(spec, job_dir)
    except BaseException:
        early.stop(started)  # rank 0 refuses it alike: nothing ran
        raise
    _timeline.mark("job planned")
    if job_id is not None:  # not a client's job after all: start the ranks as _spawn does
        early.stop(started)
        return _spawn(spec, workers, None, signals)
    # A signal or Job.stop() before the ranks started: rank 0 gets it (held until it
    # handles it) or reads the cancel at its start, and stores CANCELED.
    note = _EndNote(os.environ.get(settings.LAUNCH_END.name, ""))
    try:
        token = os.environ.get(LAUNCH_TOKEN, "")
        return _launch([], {}, job_dir, job_id, token, note, signals, workers, started)
    finally:
        note.remove()
        if started.forks is not None:
            started.forks.stop()


def _spawn(
    spec: RunSpec,
    workers: int,
    scheduler: Scheduler | None = None,
    signals: _Signals | None = None,
) -> int:
    if signals is None:
        signals = _Signals()  # before anything starts: a cancel now ends the job here
        started = early.take()
        if started is not None and scheduler is None:
            return _adopt(spec, workers, started, signals)
        if started is not None:  # a batch system's ranks need its settings: started anew
            early.stop(started)
    # The fork server first: its imports are the longest step before the ranks can run.
    token = os.urandom(8).hex()  # rank 0 records it: which run in the store is this one
    cpus = scheduler.cpus_per_task() if scheduler is not None else None
    label = [sys.executable, "-m", "qshpc", *sys.argv[1:]]  # (what ps shows of the ranks)
    forks = _fork_server(spec, workers + 1, token, label, cpus)
    try:
        return _spawn_job(spec, workers, scheduler, signals, token, forks)
    finally:
        if forks is not None:
            forks.stop()


def _spawn_job(
    spec: RunSpec,
    workers: int,
    scheduler: Scheduler | None,
    signals: _Signals,
    token: str,
    forks: forkserver.Server | None,
) -> int:
    """:func:`_spawn` once the fork server (if any) is started: plan the job, start mpiexec."""
    # Fail fast on bad input, before starting any rank; rank 0 creates the job
    # (reading the arguments needs h5py and qiskit) while the workers import.
    job_dir, job_id = plan_job(spec)
    _timeline.mark("job planned")
    if job_id is None:  # the job exists: another live run holding it is refused here
        check_claimable(spec, job_dir)
    if signals.received or _cancelled_before_start(job_dir):
        return _cancel_before_start(job_dir, job_id, signals)
    cmd = [find_mpiexec(), "-print-all-exitcodes", "-n", str(workers + 1)]
    cmd += [sys.executable, "-m", "qshpc", "run"]
    cmd += [str(spec.program), "--job-dir", str(job_dir)]
    if job_id is not None:
        cmd += ["--job-id", job_id]
        if spec.arguments_file is not None:
            cmd += ["--arguments", str(spec.arguments_file.absolute())]
        if spec.title is not None:
            cmd += ["--title", spec.title]
    if spec.seed is not None:
        cmd += ["--seed", str(spec.seed)]
    if spec.resume:
        cmd += ["--resume", str(job_dir)]
    if spec.cache is not None:
        cmd += ["--cache" if spec.cache else "--no-cache"]
    if spec.cache_dir is not None:
        cmd += ["--cache-dir", str(expand_home(spec.cache_dir, "the cache folder").absolute())]
    cmd += ["--", *spec.program_args]
    env = dict(os.environ)
    env[LAUNCH_TOKEN] = token
    if forks is not None:
        env[settings.FORK_SOCKET.name] = forks.name
    _local_launcher(env, scheduler)
    for name, value in local_env().items():  # the ranks' MPI (ofi for the PyPI mpich)
        env.setdefault(name, value)  # the user's own setting wins
    note = _EndNote(os.environ.get(settings.LAUNCH_END.name, ""))
    if note.path:
        env[settings.LAUNCH_END.name] = note.path
    try:
        return _launch(cmd, env, job_dir, job_id, token, note, signals, workers)
    finally:
        note.remove()


def _fork_server(
    spec: RunSpec, ranks: int, token: str, label: list[str], cpus_per_task: int | None = None
) -> forkserver.Server | None:
    """Start the ranks' fork server (:mod:`qshpc.runtime.forkserver`) when it pays; None if not."""
    plan = forkserver.fork_plan(spec.program, spec.cache_meta(), ranks, os.environ, cpus_per_task)
    if plan is None:
        return None
    return forkserver.start(token, ranks, plan[0], plan[1], label)


def _launch(
    cmd: list[str],
    env: dict[str, str],
    job_dir: Path,
    job_id: str | None,
    token: str,
    note: _EndNote,
    signals: _Signals,
    workers: int,
    started: early.Started | None = None,
) -> int:
    """Start ``cmd`` (mpiexec; or take the one ``started`` first), follow it to the job's end."""
    deaths = Deaths()
    if started is not None:
        proc = started.proc
        deaths.adopt(started.listener)
    else:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        watch_name = deaths.listen(token)
        if watch_name is not None:
            env[settings.LAUNCH_WATCH.name] = watch_name
        from qshpc.runtime.stdin import for_mpiexec

        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=for_mpiexec(env),  # a pipe: rank 0 reads it itself, as far as it reads
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=early.end_with_parent,
        )
        _timeline.mark("mpiexec started")
    tail: list[bytes] = []
    rank0: list[int] = []
    signals.forward_to(proc, rank0)
    out = Forwarder(sys.stdout.buffer, "stdout")  # a reader that stops stalls no rank for long
    err = Forwarder(sys.stderr.buffer, "stderr")
    _progress_to[:] = [err]  # nor the watch below: its progress lines queue there too
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out, tail), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, tail), daemon=True),
    ]
    for t in pumps:
        t.start()
    note.sweep()  # while the ranks start
    try:
        code = _watch(proc, job_dir, rank0, token, deaths, workers + 1, signals)
    finally:
        deaths.close()
    _timeline.mark("mpiexec exited")
    for t, fwd in zip(pumps, (out, err), strict=True):
        t.join(timeout=5)
        while t.is_alive() and fwd.waiting():  # a slow reader still takes the last lines
            t.join(timeout=1)
    _progress_to.clear()
    not_shown = note_not_shown([out, err], f"{job_dir / 'logs'} (qshpc logs {job_dir.name})")
    if not_shown:
        say_if_read(not_shown)
    output = b"".join(tail).decode(errors="replace")
    code = _ended(job_dir, job_id, code, token, note, output, deaths, signals)
    _timeline.mark("exit code known")
    _timeline.write(job_dir / "logs", "launcher")
    return code


def _ended(
    job_dir: Path,
    job_id: str | None,
    code: int,
    token: str,
    note: _EndNote,
    output: str,
    deaths: Deaths,
    signals: _Signals,
) -> int:
    """The command's exit code once mpiexec ended (``code``: mpiexec's own)."""
    if not (job_dir / "job.h5").is_file():
        if code == 0:
            return code
        if job_id is not None:  # rank 0 was to create the job
            return _not_created(job_dir, job_id, code, output, signals.first, deaths.ordered())
        if code == 2 and settings.AWAIT_JOB.get() is not None:
            _remove_unwritten(job_dir)  # its client never wrote it: rank 0 said so
            return 2
        if "was removed while it ran" not in output:  # else rank 0 said so
            print(
                f"qshpc: job FAILED: its job directory {job_dir} was removed while it ran "
                "(nothing of it is kept)",
                file=sys.stderr,
            )
        return 1
    end = note.read(token)
    if end is not None:  # rank 0 made the store final and said how the job ended
        _say_killed_after_end(output, deaths, str(end["state"]), job_dir)
        code = _code_of(end["state"], end.get("error"), signals.first)
        return code or (1 if end.get("unfolded") else 0)  # job.h5 left to complete: rank 0 said so
    return _exit_code(job_dir, code, token, output, deaths, signals.first)


def _say_killed_after_end(output: str, deaths: Deaths, state: str, job_dir: Path) -> None:
    """Say so when rank 0 died by a signal after the store was final (review49 L4: a kill -9
    there left ``qshpc run`` silent, exit 0, no summary). The exit code stays the job's:
    the store says SUCCEEDED (``qshpc status``), every result is in it, and a script's
    ``qshpc run ... && next step`` should not run again a job that lost nothing."""
    from qshpc.jobs.postmortem import killed_after_end

    line = killed_after_end(output, deaths.ordered(), state, str(job_dir))
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def _remove_unwritten(job_dir: Path) -> None:
    """Remove the folder of a job its client (``LocalClient.run``) died before writing.

    The client makes the folder, starts this command, then writes ``job.h5``;
    killed meanwhile (the notebook's kernel), it left a folder with the ranks'
    logs only, which ``qshpc list`` does not show and ``qshpc rm`` refuses ('no
    job'). Removed only when it holds nothing else than those logs.
    """
    logs = job_dir / "logs"
    try:
        if {e.name for e in job_dir.iterdir()} - {"logs"}:
            return
        names = [e.name for e in logs.iterdir()] if logs.is_dir() else []
    except OSError:
        return
    if "launcher.out" in names and all(_LOG_NAME.fullmatch(n) for n in names):
        shutil.rmtree(job_dir, ignore_errors=True)  # (launcher.out: the client made it)


_LOG_NAME = re.compile(r"launcher\.out|rank-\d+\.out|timeline-[\w-]+\.json")


class _EndNote:
    """A file of this launcher's own where rank 0 writes the job's end once the store is final.

    Reading it instead of the store spares the command's end an h5py import and
    a sealed read (0.2-0.4 s on 2 cores). It holds nothing the store does not:
    without it (rank 0 died, could not write it) the store is read, as before.
    """

    #: The notes' names: ``qshpc-end-<launcher pid>-<random>``.
    PREFIX = "qshpc-end-"

    def __init__(self, given: str = "") -> None:
        import tempfile

        self.path = ""
        if given and self._ours(given):  # a LocalClient's (Job.result reads it too)
            self.path = given
            return
        try:  # 0600, O_EXCL
            fd, self.path = tempfile.mkstemp(prefix=f"{self.PREFIX}{os.getpid()}-")
            os.close(fd)
        except OSError:  # no usable temporary folder: the store is read at the end
            pass

    @classmethod
    def _ours(cls, path: str) -> bool:
        """``path`` is a note a client of this user made: an empty regular file of this
        user's, 0600, no link, named as notes are (else the launcher makes its own)."""
        import stat

        try:
            st = os.lstat(path)
        except OSError:
            return False
        return (
            os.path.basename(path).startswith(cls.PREFIX)
            and stat.S_ISREG(st.st_mode)
            and st.st_uid == os.getuid()
            and not st.st_mode & 0o077
            and st.st_size == 0
        )

    def sweep(self) -> None:
        """Remove notes this user's launchers left when they were killed (SIGKILL, OOM).

        A note is left only when its launcher died before its ``finally``; its
        name carries the launcher's pid, so a note whose launcher is gone is
        removed by the next launcher, while its ranks start. A note removed in
        error (a launcher whose pid this process cannot see) costs that run only
        the store read it spares.
        """
        if not self.path:
            return
        from qshpc.store.lock import pid_alive  # (after mpiexec started: off the ranks' path)

        folder, uid = os.path.dirname(self.path), os.getuid()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    if not name.startswith(self.PREFIX) or entry.path == self.path:
                        continue
                    pid = name[len(self.PREFIX) :].split("-", 1)[0]
                    if not pid.isdigit() or pid_alive(int(pid)):
                        continue
                    try:
                        if entry.is_file(follow_symlinks=False) and entry.stat().st_uid == uid:
                            os.unlink(entry.path)
                    except OSError:
                        pass
        except OSError:
            pass

    def read(self, token: str) -> dict[str, Any] | None:
        """Rank 0's note when it is this run's (its token) and names a final state, else None."""
        return read_end_note(self.path, token)

    def remove(self) -> None:
        if not self.path:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _Signals:
    """SIGINT/SIGTERM/SIGHUP to ``qshpc run``'s own process: the job ends CANCELED.

    SIGHUP (the terminal closed: an ssh session lost) reaches mpiexec too, which
    dies of it at once and takes the ranks with it; on c590a0b ``qshpc run``
    died of it as well, and the job was left RUNNING, later FAILED without a
    reason. It is now a cancel (exit 129) that says so, the finished tasks' results
    kept. Under ``nohup`` (SIGHUP ignored) nothing changes.

    Before mpiexec starts, a signal is only remembered (the job is then not
    started). Afterwards it goes to this run's rank 0 (which stores CANCELED and
    stops the workers), held until rank 0 has set its handling (:meth:`pass_on`;
    rank 0 then cancels as the program would start), or to mpiexec if that
    takes over :attr:`HOLD_S` (mpiexec passes it to every rank: rank 0 cancels,
    workers wait for its STOP). A Ctrl-C from a terminal reaches mpiexec
    too, which passes it on by itself; it is never sent to mpiexec a second time
    here, which would make it kill the ranks at once, unless the user presses
    Ctrl-C again: then mpiexec is told twice and aborts every rank.
    """

    #: How long a signal waits for rank 0 to handle it before it goes to mpiexec instead.
    HOLD_S = 10.0

    def __init__(self) -> None:
        self.received: list[int] = []
        self.held: list[int] = []  # received, not passed on yet (rank 0 not ready for them)
        self.held_since = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self.rank0: list[int] = []
        self.rank0_fd: int | None = None  # rank 0's pidfd, once found (:meth:`pin_rank0`)
        signal.signal(signal.SIGTERM, self._on_signal)
        # SIGHUP ignored under nohup, SIGINT in a background job of a script (``qshpc run
        # p.py &``: the shell ignores it there): kept so, as any program keeps them. A
        # Ctrl-C meant for the script cancelled every job it had started in the
        # background (review28 F15).
        for s in (signal.SIGINT, signal.SIGHUP):
            if signal.getsignal(s) not in (signal.SIG_IGN, None):
                signal.signal(s, self._on_signal)
        if signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL:
            signal.signal(signal.SIGUSR1, self._on_usr1)

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def absorb(self, caught: list[int]) -> None:
        """Take the signals caught before this handling was set (:func:`early.spawn`'s)."""
        for signum in list(caught):
            self._on_signal(signum, None)
        caught.clear()

    def forward_to(self, proc: subprocess.Popen[bytes], rank0: list[int]) -> None:
        self.proc, self.rank0 = proc, rank0
        self.pass_on()  # one received while mpiexec started is held: it goes to rank 0

    def pin_rank0(self) -> None:
        """Open a pidfd on rank 0 the moment it is found (a child of mpiexec's proxy, not of
        this process): a signal for it then reaches it or nothing, never another process
        that took its pid after it ended (its pid alone could name one by then)."""
        if self.rank0_fd is None and self.rank0:
            with contextlib.suppress(OSError, AttributeError):  # no pidfd here: the pid
                self.rank0_fd = os.pidfd_open(self.rank0[0])

    def _kill(self, pid: int, signum: int) -> None:
        """Send ``signum`` to ``pid``: through rank 0's pidfd where ``pid`` is rank 0's."""
        try:
            if self.rank0_fd is not None and self.rank0 and pid == self.rank0[0]:
                signal.pidfd_send_signal(self.rank0_fd, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        proc = self.proc
        if proc is None:
            # Before mpiexec starts: the launcher looks at what it received before it
            # starts it (the job is then not started); one that comes after that look
            # is held for rank 0. On 2dca53c it was dropped and the job ran to its end.
            if not self.held:
                self.held_since = time.monotonic()
            self.held.append(signum)
            return
        if signum == signal.SIGINT and self.received.count(signal.SIGINT) > 1:
            self.held.clear()
            proc.send_signal(signal.SIGINT)  # Ctrl-C again: mpiexec aborts every rank
            proc.send_signal(signal.SIGINT)
            return
        if not self.held:
            self.held_since = time.monotonic()
        self.held.append(signum)
        self.pass_on()

    def _on_usr1(self, signum: int, frame: Any) -> None:
        """SIGUSR1 (Slurm's warning before the time limit, ``--signal=USR1@N``): to rank 0,
        when the program handles it; it is no stop. hunt16: on e7cd270 it killed ``qshpc
        run`` (its default action), and rank 0 never saw it."""
        pid = self.rank0[0] if self.rank0 else None
        if pid is not None and _handles(pid, signal.SIGUSR1):
            self._kill(pid, signal.SIGUSR1)
            return
        print(
            "qshpc: SIGUSR1 received; "
            + ("rank 0 is not started yet" if pid is None else "the program does not handle it")
            + ": ignored",
            file=sys.stderr,
            flush=True,
        )

    def pass_on(self) -> None:
        """Pass the held signals on: to rank 0 once it handles them, else to mpiexec after a while.

        A signal that reached a rank still importing (or inside MPI_Init, before
        it set its handling at its first line) would kill it with a traceback,
        or leave the other ranks waiting in MPI's start. So a signal is held
        until rank 0 is known and catches SIGTERM (``/proc/PID/status``: it has
        set qshpc's handling), then rank 0 alone gets it and cancels the job as
        the program would start; the workers wait for its stop. After
        :attr:`HOLD_S` without such a rank 0 (it hangs in its imports, say),
        mpiexec gets it and passes it to every rank, as before.
        """
        proc = self.proc
        if not self.held or proc is None:
            return
        if self.rank0 and _handles_sigterm(self.rank0[0]):
            target = self.rank0[0]
        elif time.monotonic() - self.held_since >= self.HOLD_S:
            target = proc.pid
        else:
            return
        held, self.held = self.held, []
        for signum in held:
            if signum == signal.SIGHUP and not (
                target != proc.pid and _handles(target, signal.SIGHUP)
            ):  # a hangup stops the job as a SIGTERM does where no rank 0 handles it
                signum = signal.SIGTERM  # (mpiexec, or rank 0 still starting)
            self._kill(target, signum)


def _handles_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (True where ``/proc`` cannot say)."""
    return _handles(pid, signal.SIGTERM)


def _handles(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (True where ``/proc`` cannot say)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    except (OSError, ValueError, IndexError):
        pass
    return True


def _cancelled_before_start(job_dir: Path) -> bool:
    from qshpc.jobs.paths import read_override

    override = read_override(job_dir)
    return bool(override) and (override or {}).get("state") == "CANCELED"


def _cancel_before_start(job_dir: Path, job_id: str | None, signals: _Signals) -> int:
    """The job was cancelled before any rank started (a signal here, or ``Job.stop()``).

    A job that exists (a client's, ``--resume``) records CANCELED; one that rank
    0 was to create is not created at all.
    """

    sig = signals.first or signal.SIGTERM
    how = signal.Signals(sig).name
    if job_id is not None:
        print(f"qshpc: job {job_id} cancelled ({how}) before it was created", file=sys.stderr)
        return 128 + sig
    if not _cancelled_before_start(job_dir):
        _mark_terminal(job_dir, "CANCELED", f"cancelled ({how}) before it started")
    print(f"qshpc: job {job_dir.name} CANCELED before it started", file=sys.stderr)
    return 128 + sig


def _not_created(
    job_dir: Path,
    job_id: str,
    code: int,
    output: str,
    signalled: int | None,
    order: list[tuple[int, int]] | None = None,
) -> int:
    """The ranks ended (``code`` != 0) and the job rank 0 was to create has no store.

    Rank 0 refused to create it (bad arguments: it said why, exit 2), a signal
    ended the ranks before it did (128+signal), a rank died while the ranks
    started (``order``: the first to end; the OOM killer, a kill -9: exit 1),
    rank 0 failed before (it said why: exit 1), or the job's folder was removed
    while it ran (exit 1).
    """
    if signalled is not None:
        how = signal.Signals(signalled).name
        print(f"qshpc: job {job_id} cancelled ({how}) before it was created", file=sys.stderr)
        return 128 + signalled
    if code == 2:
        return 2  # rank 0 refused to create the job and said why
    if order and "was removed while it ran" not in output:
        import socket

        from qshpc.jobs.postmortem import first_death

        died, rcode = first_death(output, order)
        hint = ""
        if rcode == -signal.SIGKILL:  # minus a signal (postmortem.exit_codes)
            hint = " (SIGKILL is most often the kernel's out-of-memory killer: `dmesg` says)"
        print(
            f"qshpc: job {job_id} FAILED while its ranks started, before it was created: "
            f"{died} on host {socket.gethostname()}; nothing ran and nothing was kept: run "
            f"the same command again{hint}",
            file=sys.stderr,
        )
        return 1
    if "was removed while it ran" not in output:  # else rank 0 said so
        print(
            f"qshpc: job {job_id} FAILED: the ranks exited with code {code} and there is no "
            f"job store in {job_dir} (rank 0 could not create it, see above, or the folder "
            "was removed while the job ran)",
            file=sys.stderr,
        )
    return 1


def _exit_code(
    job_dir: Path,
    code: int,
    token: str,
    output: str,
    deaths: Deaths,
    signalled: int | None,
) -> int:
    """``qshpc run``'s exit code from how the job ended, not from mpiexec's.

    mpiexec's own code says little (0, 5, 9 or 130 when a rank was killed or
    left without MPI_Finalize, 9 when rank 0 leaves a stuck worker behind on
    purpose). A run whose rank 0 stored the final state ends 0 (SUCCEEDED), 1
    (FAILED) or 128+signal (CANCELED: 130 after Ctrl-C, 143 after SIGTERM). When
    the ranks died first, the state is recorded here: CANCELED when this process
    was told to stop, else FAILED, naming the rank that died first. This run is
    found in the store by its launch token; a run refused before it started (a
    held lock, a bad argument) keeps rank 0's code (2), even when another run of
    the job finished meanwhile.
    """
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
    except Exception:
        meta = _stored_after_fold(job_dir)[0]
    ours = meta.get("launch") == token  # the store's last run is the one we launched
    state = meta.get("state")
    if ours and state in ("SUCCEEDED", "FAILED", "CANCELED"):
        _say_killed_after_end(output, deaths, str(state), job_dir)
        return _code_of(state, meta.get("error"), signalled)
    if not ours and not signalled and code in (0, 1, 2):
        return code  # refused before it started (rank 0 said why): keep its code (2)
    # The ranks ended before this run's end was stored (a resumed job's store may
    # still hold the previous run's: that is left as it is).
    state = _mark_dead(job_dir, output, code, deaths.ordered(), signalled)
    return 128 + signalled if signalled else _code_of(state, None, None)


def _code_of(state: str | None, error: Any, signalled: int | None) -> int:
    if state == "SUCCEEDED":
        return 0
    if state == "CANCELED":
        if signalled is None:
            signalled = signal.SIGINT if "SIGINT" in str(error or "") else signal.SIGTERM
        return 128 + signalled
    return 1


#: Lines that may be MPICH's "BAD TERMINATION" banner or its exit-code list
#: (``-print-all-exitcodes``): read for the post-mortem, never shown as they
#: are (the banner names whichever process mpiexec reaped first, often rank 0).
_BANNER = re.compile(
    rb"^(=+|=   .*|YOUR APPLICATION TERMINATED WITH THE EXIT STRING: .*|This typically refers "
    rb"to a problem with your application\.|Please see the FAQ page for debugging suggestions|"
    rb"\[mpiexec@\S+\] Exit codes: .*|)\s*$"
)


def _pump(src: Any, dst: Forwarder, tail: list[bytes]) -> None:
    """Forward a child's output as it comes; keep the last lines for the post-mortem.

    mpiexec's own lines about how the ranks ended (its banner, its exit-code
    list) are kept out: the post-mortem, or qshpc's summary when the store is
    final, says it right. Lines that merely look like them (a program printing
    ``=====``) are held back only until a line that does not follows.
    """
    held: list[bytes] = []
    for line in iter(src.readline, b""):
        tail.append(line)
        if len(tail) > 400:
            del tail[:200]
        if _BANNER.match(line):
            held.append(line)
            continue
        dst.put([*held, line])
        held.clear()
    if held and not any(_MPIEXEC_SAYS.search(h) for h in held):
        dst.put(held)


_MPIEXEC_SAYS = re.compile(rb"BAD TERMINATION|YOUR APPLICATION TERMINATED|\] Exit codes: ")


def _watch(
    proc: subprocess.Popen[bytes],
    job_dir: Path,
    rank0: list[int],
    token: str,
    deaths: Deaths,
    size: int = 0,
    signals: _Signals | None = None,
) -> int:
    """Wait for mpiexec: show progress from the store, learn rank 0's pid, end a lingering mpiexec.

    The ``size`` ranks are found among mpiexec's grandchildren as they start
    (:func:`qshpc.launch.deaths.rank_pids`) and watched (:class:`Deaths`); signals go to this
    run's rank 0 from then on. Without ``/proc``, rank 0's pid is taken from
    this run's entry in the store. Once rank 0 is gone (the store is final,
    or rank 0 died), mpiexec gets 5 s to end the other ranks, then SIGTERM, then
    SIGKILL: nothing is lost by that cut, as only rank 0 writes the store and the
    workers wrote their logs before they said goodbye.

    Without ``/proc``, this run's entry in the store is found by the launch
    token (a resumed job also holds the previous runs' ranks, whose pids are
    gone; a run of the same job by someone else holds its own).

    Progress: a plain line on stderr every ``QSHPC_PROGRESS_S`` seconds (5;
    0 turns it off) with tasks done, failed, the rate and the sub-status, read
    from the store as ``qshpc status --watch`` does. mpiexec's exit is noticed
    at once (its pidfd wakes the wait), not at the next poll: a short job's
    command ends as soon as its ranks do. The store is read (h5py imported)
    only for progress lines and where ``/proc`` cannot say which pid is rank 0.
    """
    every = settings.PROGRESS_S.get()
    next_line = time.monotonic() + every
    meter: Any = None
    found: dict[int, int] = {}  # rank -> pid, from /proc
    look_until = time.monotonic() + 60
    deaths.watch_end(proc.pid)  # every wait below ends the moment mpiexec exits
    while True:
        code = proc.poll()
        if code is not None:
            deaths.wait(0)
            return code
        looking = len(found) < size and time.monotonic() < look_until
        holding = signals is not None and bool(signals.held)
        deaths.wait(0.05 if looking or holding else 0.5)
        if looking:
            for rank, pid in rank_pids(proc.pid, found):
                deaths.watch(rank, pid)
            if not rank0 and 0 in found:
                rank0.append(found[0])
                if signals is not None:
                    signals.pin_rank0()
        if holding and signals is not None:
            signals.pass_on()
        if every > 0 and time.monotonic() >= next_line:
            next_line = time.monotonic() + every
            meter = _progress_line(job_dir, meter)
        if not rank0:
            if not looking:  # no /proc to read: this run's rank 0 as it records itself
                _find_rank0(job_dir, token, rank0)
            continue
        try:
            os.kill(rank0[0], 0)
        except ProcessLookupError:
            try:
                # mpiexec prints each rank's exit code only when it ends by itself: a
                # loaded machine (CI) once took over 5 s to reap the others, and the
                # post-mortem then said "killed or crashed" for an os._exit(3). A stop
                # signal meanwhile (it went to rank 0's dead pid) ends the wait at once.
                asked = len(signals.received) if signals is not None else 0
                deadline = time.monotonic() + RANK0_GONE_WAIT_S
                while time.monotonic() < deadline:
                    if signals is not None and len(signals.received) > asked:
                        break
                    try:
                        return proc.wait(timeout=0.1)
                    except subprocess.TimeoutExpired:
                        continue
                proc.terminate()  # mpiexec passes it to the ranks left
                try:
                    return proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    return proc.wait()
            finally:
                deaths.wait(0)


#: Seconds mpiexec is given to end the other ranks after rank 0's process is gone.
RANK0_GONE_WAIT_S = 20.0


def _find_rank0(job_dir: Path, token: str, rank0: list[int]) -> None:
    """Append rank 0's pid to ``rank0`` once this run's rank 0 has recorded it in the store.

    This run's entry is the one with its launch token: a resumed job's store lists
    the previous run's ranks until this run's rank 0 records its own (never take a
    dead pid of an old run), and a run of the same job by someone else has its own.
    """
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
        ranks = meta.get("ranks") or []
        if ranks and meta.get("launch") == token:
            rank0.append(int(ranks[0]["pid"]))
    except Exception:
        pass


def _progress_line(job_dir: Path, meter: Any) -> Any:
    """Print one progress line for a running job; return the rate meter to reuse."""
    from qshpc.jobs.progress import RateMeter, format_line, snapshot
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            snap = snapshot(r.meta())
    except Exception:
        return meter
    meter = meter or RateMeter()
    meter.add(snap.now, snap.done + snap.failed)
    if snap.state == "RUNNING":
        line = f"qshpc: {format_line(snap, meter.rate())}"
        if _progress_to:
            _progress_to[0].put([f"{line}\n".encode(errors="replace")], wait=False)
        else:
            print(line, file=sys.stderr, flush=True)
    return meter


#: While ``_launch`` forwards the ranks' stderr: the progress lines go through it too (a
#: stderr that is not read then stops neither the ranks nor the watch).
_progress_to: list[Forwarder] = []


def _what_was_stored(job_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The store's meta and the ids of its finished tasks (raises when unreadable)."""
    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        return r.meta(), {t["task_id"] for t in r.tasks() if t["state"] == "SUCCEEDED"}


def _stored_after_fold(job_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """:func:`_what_was_stored` after folding what was committed, for a store unreadable
    as the ranks left it (rank 0 killed in the middle of a write: its SUCCEEDED end may
    be in the journal); nothing when another live run holds the job or it stays unreadable.
    The fold is made under the job's lock (a ``--resume`` starting meanwhile waits or
    is refused), as :func:`qshpc.store.refold.fold_ended` makes its own.
    """
    from qshpc.store import recover
    from qshpc.store.lock import FOLD_COMMAND, JobLock

    try:
        lock = JobLock(job_dir, FOLD_COMMAND).acquire()  # refused while a run holds it
    except Exception:
        return {}, set()
    try:
        recover(job_dir)
        return _what_was_stored(job_dir)
    except Exception:
        return {}, set()
    finally:
        lock.release()


def _mark_terminal(job_dir: Path, state: str, text: str) -> None:
    """Record the end the ranks could not, or say in one line why it could not be (hunt23b:
    a job folder whose file system turned read-only under the job was an OSError traceback
    here, after rank 0's own line, and the state line never came)."""
    from qshpc.jobs.paths import STATUS_OVERRIDE, mark_terminal

    try:
        mark_terminal(job_dir, state, text)
    except OSError as exc:
        print(
            f"qshpc: error: cannot record the job's end in {job_dir / STATUS_OVERRIDE}: "
            f"{exc.strerror or exc}; once its file system is writable again (df -h, "
            f"mount), `qshpc status {job_dir}` shows what its store kept",
            file=sys.stderr,
        )


def _mark_dead(
    job_dir: Path, output: str, code: int, order: list[tuple[int, int]], signalled: int | None
) -> str | None:
    """The ranks ended without finalizing the store: record why; return the state recorded.

    CANCELED when this process was told to stop (the user's Ctrl-C or
    ``qshpc cancel`` reached the ranks before rank 0 could store it), else
    FAILED naming the rank that died first, its host and signal, the tasks it
    held, and what to do.
    """
    from qshpc.jobs.paths import job_ref
    from qshpc.jobs.postmortem import describe, resume_command
    from qshpc.store.lock import holder_alive

    if holder_alive(job_dir, runs_only=True) is not None:
        return None  # another live run holds the job (ours was refused): not ours to judge
    from qshpc.store.refold import fold_dead

    unreadable: Exception | None = None
    try:
        meta, finished = _what_was_stored(job_dir)
    except Exception as exc:
        meta, finished = _stored_after_fold(job_dir)
        unreadable = None if meta else exc
    state = meta.get("state")
    if state not in (None, "QUEUED", "RUNNING"):
        return str(state)
    job_id = meta.get("id", job_dir.name)
    from qshpc.jobs.paths import read_override

    cancelled = read_override(job_dir)  # `qshpc cancel` killed a rank 0 that went on (SIGKILL)
    if cancelled is not None and cancelled.get("state") == "CANCELED" and signalled is None:
        try:
            fold_dead(job_dir)
        except Exception:
            pass
        print(f"qshpc: job {job_id} CANCELED: {cancelled.get('error')}", file=sys.stderr)
        return "CANCELED"
    kept = None
    if unreadable is not None and signalled is None:  # review53 N3: not "0 kept", not "killed"
        from qshpc.jobs.postmortem import own_error_end, unreadable_kept

        text = own_error_end(job_dir, unreadable, code)
        if text is not None:
            _mark_terminal(job_dir, "FAILED", text)
            print(f"qshpc: job {job_id} FAILED: {text}", file=sys.stderr)
            return "FAILED"
        kept = unreadable_kept(job_dir, unreadable)
    why = describe(job_dir, meta, finished, output, order, kept)
    if signalled is not None:
        state = "CANCELED"
        text = (
            f"job cancelled: received {signal.Signals(signalled).name}; the ranks ended "
            f"before rank 0 stored it; {len(finished)} finished task results are kept in the "
            f"store (`{resume_command(meta, job_ref(job_dir))}` runs the rest)"
        )
    else:
        state = "FAILED"
        text = f"the MPI ranks exited with code {code}: {why}"
        known = "died:" in why or ") exited (code " in why  # a rank seen ending first
        unknown = not known or "died: killed or crashed" in why
        if unknown and 0 < code < 128 and code != 9 and "MPI_Abort(" not in why:
            # No rank was seen ending first, or one with no code (the first pidfd of ranks
            # that all ended at once): mpiexec ends them so when a rank calls MPI_Abort, whose
            # own line mostly dies in the rank's log pipe.
            why = (
                f"every rank ended at once with exit code {code}, as they do when a task or "
                f"the program calls MPI_Abort({code}) (MPI.COMM_WORLD.Abort({code})); {why}"
            )
            text = why
    _mark_terminal(job_dir, state, text)
    try:
        fold_dead(job_dir)  # job.h5 alone now holds every committed record (under the lock)
    except Exception as exc:  # the directory may be gone or full: the journal stays
        print(f"qshpc: could not fold the journal into job.h5: {exc}", file=sys.stderr)
    shown = text if state == "CANCELED" else why
    print(f"qshpc: job {job_id} {state}: {shown}", file=sys.stderr)
    return state
