"""One writer per job: the job lock, safe on the shared file systems clusters use.

Rank 0 of a run is a job's only writer, and it holds ``JOB_DIR/job.lock`` from
before it opens the store until the store is final. A second ``qshpc run`` on
the same ``--job-dir``, or a second ``--resume`` of a live job, is refused with
one line naming the holder (host, pid, Slurm job); the lock of a run that died
is taken over.

Why flufl.lock: it takes the lock with ``link(2)`` of a unique claim file and
checks the link count, the method ``open(2)``'s manual gives for NFS, where
``O_EXCL`` was not atomic (NFSv2) and a retried request can report a false
failure. ``flock``/``fcntl`` locks are released by the kernel when the holder
dies, which is their great merit, but on cluster file systems they are often
not shared between nodes: Lustre mounted with ``localflock`` (and BeeGFS by
default) keeps them node-local, so two nodes would both "hold" the lock
without an error; with ``noflock`` (Lustre) or without lockd (NFSv3) they fail
with ENOSYS/ENOLCK. ``filelock`` is fcntl or O_EXCL, with the same two
problems. A link-based lock works on all of them, and it leaves the holder's
host and pid in the file.

What flufl.lock leaves to us, and how it is done here:

- *A holder that died leaves its lock.* flufl.lock breaks a lock only when
  its lifetime ran out. The holder refreshes it every :data:`REFRESH_S`
  seconds (lifetime :data:`LIFETIME_S`), so a lock from another host is stale
  once it was not refreshed for a lifetime (plus 10 s for clock skew). On the
  same host we know at once: the pid is gone, or it is now another process
  (its start time differs from the one recorded). A requeued Slurm job (same
  Slurm job id, a higher restart count) takes over its previous run's lock.
  A holder on another host whose Slurm job has ended, processes and all
  (``qshpc run`` asks Slurm through :mod:`qshpc.store.holders`), is gone too.
- *Breaking is racy in flufl.lock* (two breakers can remove each other's
  fresh lock). Here a breaker takes a second lock (``job.lock.break``), checks
  that the lock still holds the same stale claim, and only then removes it.
- *Host names.* flufl.lock names hosts by ``socket.getfqdn()``, which is
  ``localhost`` on every node whose ``/etc/hosts`` maps its name to
  127.0.0.1 (our dev cluster's namespaced nodes, many cloud VMs): locks of
  other nodes would look local, and their live holders dead. The lock uses
  ``socket.gethostname()``, the name qshpc records for ranks.

The holder's details (host, pid, Slurm job, since when, which command) are in
``job.lock.holder`` (JSON), written by the holder after it got the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from qshpc.errors import StoreError, UserError

LOCK_FILE = "job.lock"
HOLDER_FILE = "job.lock.holder"
BREAK_FILE = "job.lock.break"
#: Held by ``qshpc submit --resume`` from its look at the job to its record of the new
#: Slurm job (:func:`step_lock`): one resume at a time.
RESUME_FILE = "job.resume.lock"
#: What :func:`qshpc.store.refold.fold_ended` holds the lock as: a run waits for it.
FOLD_COMMAND = "qshpc (folding an ended job's journal)"
#: What ``qshpc rm``/``gc`` hold the lock as while they look at a job again and remove
#: it: brief and no run, as a fold (a run waits for it; readers do not count it a run).
REMOVE_COMMAND = "qshpc rm (removing an ended job)"
#: The holders that are no run (:func:`holder_alive` with ``runs_only``).
_NO_RUN = (FOLD_COMMAND, REMOVE_COMMAND)
LIFETIME_S = 60.0
REFRESH_S = 10.0
CLOCK_SLOP_S = 10.0
_HOST = socket.gethostname()


def _pid_namespace() -> int | None:
    """This process's pid namespace (the inode of ``/proc/self/ns/pid``), None if unknown."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


#: This process's pid namespace: a pid means this process's only in it (see :func:`same_pid_space`).
PIDNS = _pid_namespace()


def same_pid_space(pidns: object) -> bool:
    """Whether a pid recorded with ``pidns`` (on this host) names a process here.

    The host's name alone said so: a run inside ``apptainer --containall``, ``unshare --pid``
    or a container with the host's name records pids of its own namespace under the host's
    name, and one ``qshpc status`` from outside judged its rank 0 gone (no such pid here, or
    another process's) and the run lost its lock (review33 F2). None (not recorded: an
    older job; or unknown here): the name alone says, as before.
    """
    return pidns is None or PIDNS is None or pidns == PIDNS


class JobLockedError(UserError):
    """Another live run holds the job's lock.

    Attributes:
        holder: What is known of the holder (host, pid, Slurm job, since).
    """

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self) -> tuple[object, ...]:
        return (JobLockedError, (str(self), self.holder))


@dataclass
class Holder:
    """Who holds a job's lock."""

    host: str
    pid: int
    since: float = 0.0
    slurm_job: str | None = None
    slurm_restarts: int = 0
    start_ticks: int | None = None
    command: str = ""
    slurm_cluster: str | None = None
    pidns: int | None = None
    #: The job folder the run holds: its ``[st_dev, st_ino]`` and its path (review35 F6:
    #: a copy of the folder, ``cp -a``/``rsync`` while the job ran, names this run too).
    folder: list[int] | None = None
    path: str | None = None

    def on_this_host(self) -> bool:
        """True when the holder runs on this host (as qshpc names hosts) and in this pid
        namespace (:func:`same_pid_space`): its pid can be checked."""
        return self.host == _HOST and same_pid_space(self.pidns)

    def describe(self) -> str:
        """``host vm, pid 123, Slurm job 45, since 2026-12-01 17:02:11``."""
        text = f"host {self.host}, pid {self.pid}"
        if self.slurm_job:
            text += f", Slurm job {self.slurm_job}"
        from qshpc.text import shown, shown_time

        if self.since:
            text += f", since {shown_time(self.since)}"  # (`?` for a damaged one)

        return shown(text)


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot, ``/proc/PID/stat``'s field
    22; Linux), None if unknown. With the pid it names one process: a pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return int(data[data.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (killed, not yet reaped) holds nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def process_is(pid: int, ticks: int | None) -> bool:
    """Whether the process that started at ``ticks`` (:func:`start_ticks`) runs as ``pid``:
    a pid now another process's (reused) is not it. ``ticks`` None (not recorded: an older
    job) or unreadable: the pid alone says (:func:`pid_alive`)."""
    if not pid_alive(pid):
        return False
    if ticks is None:
        return True
    now = start_ticks(pid)
    return now is None or now == ticks


#: How a step lock's claim names its holder's host: ``host@pidns`` (:func:`_claim`).
_NS_SEP = "@"


def _flufl_lock(path: Path, with_pidns: bool = False) -> Any:
    """flufl.lock's lock on ``path``; ``with_pidns``: its claim names the host as
    ``host@pidns`` (a host name has no ``@``), for a lock whose claim alone says whether
    its holder runs (:func:`step_lock`): a pid of another pid namespace names no process here.
    """
    from flufl.lock import Lock

    host = f"{_HOST}{_NS_SEP}{PIDNS}" if with_pidns and PIDNS is not None else _HOST

    class HostLock(Lock):
        """flufl.lock's Lock with the host named as qshpc names it (see the module doc)."""

        def __init__(self, lockfile: str, lifetime: timedelta) -> None:
            super().__init__(lockfile, lifetime=lifetime)
            self._hostname = host
            self._set_claimfile()

    return HostLock(str(path), timedelta(seconds=LIFETIME_S))


def _read_lock(path: Path) -> str:
    """The text of a lock file (its claim file's name), never blocking on a FIFO there.

    Raises:
        OSError: Missing, unreadable, or not a regular file.
    """
    from qshpc.store.seal import open_regular

    with open(open_regular(path), "rb", closefd=True) as fh:
        return fh.read(1 << 16).decode(errors="replace").strip()  # a path: PATH_MAX 4096


def _claim(path: Path) -> tuple[str, int] | None:
    """(host, pid) of the claim in the lock file, None when there is no (readable) claim.
    The host as named in the claim: ``host@pidns`` for a step lock (:func:`_flufl_lock`)."""
    try:
        text = _read_lock(path)
    except OSError:
        return None
    parts = text.split("|")
    if len(parts) != 4:
        return None
    try:
        return parts[1], int(parts[2])
    except ValueError:
        return None


def _claimed_here_dead(claim: tuple[str, int]) -> bool:
    """Whether a step lock's claim (:func:`_claim`) is a process of this host and pid
    namespace that is gone: a claim of another pid namespace (a container, ``unshare
    --pid`` with the host's name) is never judged by its pid here, only by its lapse."""
    host, _, ns = claim[0].partition(_NS_SEP)
    if host != _HOST:
        return False
    try:
        pidns = int(ns) if ns else None
    except ValueError:
        return False
    return same_pid_space(pidns) and not pid_alive(claim[1])


def _claim_host(claim: tuple[str, int]) -> str:
    """The host a claim names, without its pid namespace."""
    return claim[0].partition(_NS_SEP)[0]


def read_holder(job_dir: Path) -> Holder | None:
    """The holder of ``job_dir``'s lock as recorded, or None when it is not locked."""
    lock = job_dir / LOCK_FILE
    claim = _claim(lock)
    if claim is None:
        return None
    holder = Holder(host=claim[0], pid=claim[1])
    try:
        from qshpc.store.seal import open_regular

        with open(open_regular(job_dir / HOLDER_FILE), "rb") as fh:  # never a FIFO's
            info = json.loads(fh.read(1 << 16))
        if info.get("host") == holder.host and info.get("pid") == holder.pid:
            holder = Holder(**{k: info[k] for k in Holder.__dataclass_fields__ if k in info})
    except (OSError, ValueError, TypeError):
        pass
    return holder


def holder_alive(job_dir: Path, runs_only: bool = False) -> Holder | None:
    """The holder of ``job_dir``'s lock when it still runs (or cannot be known dead), else None.

    ``runs_only``: None too for a read folding an ended job's journal
    (:data:`FOLD_COMMAND`, brief, no run: :meth:`JobLock.acquire` waits for it).
    """
    holder = read_holder(job_dir)
    if runs_only:
        holder = _described(job_dir, holder)
    if holder is None or _stale(job_dir, holder):
        return None
    if runs_only and holder.command in _NO_RUN:
        return None
    return holder


def _described(job_dir: Path, holder: Holder | None, wait: float = 0.5) -> Holder | None:
    """``holder`` once it has written who it is (``job.lock.holder``, written just after
    the claim): a reader that saw a claim without it took another reader's brief fold for
    a run (a killed job's ``qshpc status`` said RUNNING now and then, hunt16's test)."""
    deadline = time.monotonic() + wait
    while holder is not None and not holder.since and time.monotonic() < deadline:
        time.sleep(0.01)
        holder = read_holder(job_dir)
    return holder


#: The batch system's record of a run (``Scheduler.run_record()``: ``SLURM_JOB_ID``,
#: ``SLURM_RESTART_COUNT``, ...), given by whoever starts the run; the store reads
#: no Slurm variable itself.
Batch = Mapping[str, str]


def _restarts(batch: Batch | None) -> int:
    try:
        return int((batch or {}).get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def slurm_run_id(batch: Batch | None) -> str | None:
    """The Slurm id that names this run's own job: ``A_T`` for an element of an array
    (``SLURM_ARRAY_JOB_ID``, ``SLURM_ARRAY_TASK_ID``), else ``SLURM_JOB_ID``; None outside Slurm.

    An element's raw ``SLURM_JOB_ID`` can equal the array's id (Slurm gives it to the
    element with the highest index): ``scancel`` or ``squeue -j`` of it means every element
    (review34 F1: ``qshpc cancel 363_2`` cancelled the whole array 363; F2: its resume
    was refused as "being run" while the other elements ran).
    """
    batch = batch or {}
    array, task = batch.get("SLURM_ARRAY_JOB_ID"), batch.get("SLURM_ARRAY_TASK_ID")
    if array and task and array.isdigit() and task.isdigit():
        return f"{array}_{task}"
    return batch.get("SLURM_JOB_ID") or None


def _stale(job_dir: Path, holder: Holder, batch: Batch | None = None) -> bool:
    """True when the run that holds the lock is gone (see the module doc)."""
    mine = slurm_run_id(batch)
    if mine and holder.slurm_job == mine and _restarts(batch) > holder.slurm_restarts:
        return True  # Slurm requeued the job: its previous run is over
    if holder.on_this_host():
        return pid_gone(holder) or _elsewhere(job_dir, holder)
    if lapsed(job_dir):
        return True
    return _slurm_job_over(holder)


def folder_id(job_dir: Path) -> list[int] | None:
    """``[st_dev, st_ino]`` of a job folder (None when it cannot be read): what tells a
    copy of the folder from the folder a run works in."""
    try:
        st = os.stat(job_dir)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def copied_from(job_dir: Path) -> Holder | None:
    """The holder that ``job_dir``'s lock names when it holds another folder: ``job_dir``
    is a copy of that run's job folder (``cp -a``, ``rsync``), made while it ran there
    (review35 F6: ``qshpc cancel COPY`` cancelled the live job, and ``status`` of the copy
    said RUNNING). Only a holder on this host (and pid namespace) is compared: another
    host may number the same folder's device otherwise. None for a holder of a qshpc
    that did not record its folder."""
    holder = read_holder(job_dir)
    return (
        holder
        if holder is not None and holder.on_this_host() and _elsewhere(job_dir, holder)
        else None
    )


def _elsewhere(job_dir: Path, holder: Holder) -> bool:
    """``holder`` recorded a folder, and ``job_dir`` is another one."""
    return not_this_folder(holder.folder, job_dir)


def not_this_folder(recorded: object, job_dir: Path) -> bool:
    """A run recorded the :func:`folder_id` ``recorded``, and ``job_dir`` is another folder
    (False when none was recorded, by an older qshpc, or it is damaged: cannot tell)."""
    if not isinstance(recorded, list) or len(recorded) != 2:
        return False
    here = folder_id(job_dir)
    return here is not None and here != recorded


def pid_gone(holder: Holder) -> bool:
    """A holder on this host: its pid is gone, or is now another process."""
    if holder.pid == os.getpid():
        return False
    return not process_is(holder.pid, holder.start_ticks)


def lapsed(job_dir: Path) -> bool:
    """The lock was not refreshed for its lifetime (and the clock slop): its holder stopped."""
    try:
        expires = (job_dir / LOCK_FILE).stat().st_mtime  # the holder touches it ahead
    except OSError:
        return False
    return expires + CLOCK_SLOP_S < time.time()


def _claim_failed(lock: Any, job_dir: Path, exc: OSError, doing: str) -> StoreError:
    """The error for a flufl lock whose claim file could not be written (a full disk),
    its claim file removed: on 8cc329b each refused run left one (job.lock|host|pid|n)."""
    with contextlib.suppress(OSError):
        os.unlink(lock._claimfile)
    return StoreError(f"cannot lock job {job_dir}: {exc.strerror or exc} ({doing}{_room(job_dir)})")


def _room(job_dir: Path) -> str:
    """What a lock needs: a writable folder with room for a file (review50 F5: an
    inode-less file system, bytes to spare, named no ``df -i``)."""
    from qshpc.store.space import free_text

    free = free_text(job_dir)
    return (
        "the job directory must be writable, on a file system with free space and inodes: "
        f"df -h, df -i{f'; now {free}' if free else ''}"
    )


def _slurm_job_over(holder: Holder) -> bool:
    """A holder on another host whose Slurm job Slurm says is over, processes and all.

    Such a run cannot refresh its lock any more (Slurm ended every process of
    the job), so the lock is taken over at once instead of 70 s after its last
    refresh: an element of an array cancelled with ``scancel`` (the store says
    CANCELED) was refused for that long by ``qshpc run --resume`` as "already
    running ... cancel it", and ``qshpc cancel`` had nothing to cancel.
    """
    from qshpc.store import holders

    check = holders.slurm_job_over
    if check is None or not holder.slurm_job:
        return False
    try:
        return bool(check(str(holder.slurm_job), holder.slurm_cluster))
    except Exception:  # Slurm's trouble never takes a live holder's lock
        return False


@contextlib.contextmanager
def step_lock(job_dir: Path, what: str) -> Iterator[None]:
    """Hold ``JOB_DIR/job.resume.lock`` while ``what`` (``qshpc submit --resume``) looks at
    the job and acts on it: one such step at a time (hunt14a: two shells resuming one job
    at once each sbatched a Slurm job; one run was refused by the job lock, and its job id
    was left as the job's). A holder on this host that died is taken over at once, one on
    another host once the lock lapsed (:data:`LIFETIME_S`).

    Raises:
        UserError: Another live process holds it (one line naming it).
        StoreError: The lock cannot be made (a read-only folder, a full disk).
    """
    from flufl.lock import TimeOutError

    path = job_dir / RESUME_FILE
    for _ in range(3):
        lock = _flufl_lock(path, with_pidns=True)
        try:
            lock.lock(timeout=timedelta(seconds=0))
        except TimeOutError:
            claim = _claim(path)
            if claim is not None and _claimed_here_dead(claim):
                with contextlib.suppress(OSError):  # its holder died here (a kill -9)
                    if _claim(path) == claim:
                        winner = _read_lock(path)
                        path.unlink()
                        Path(winner).unlink(missing_ok=True)
                continue
            if claim is None:
                time.sleep(0.05)  # released meanwhile
                continue
            from qshpc.store.jobref import job_ref
            from qshpc.text import shown

            raise UserError(
                f"job {shown(job_dir.name)} is being resumed by another process (host "
                f"{shown(_claim_host(claim))}, pid {claim[1]}): wait for it to end, then see "
                f"`qshpc status {job_ref(job_dir)}`"
            ) from None
        except OSError as exc:
            raise _claim_failed(lock, job_dir, exc, f"{what}: ") from None
        stop = threading.Event()
        # Refreshed while held: an sbatch slowed by a busy controller outlives a lifetime.
        threading.Thread(
            target=_keep_fresh, args=(lock, stop), name="qshpc-step-lock", daemon=True
        ).start()
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(OSError):
                lock.unlock(unconditionally=True)
        return
    if path.is_symlink() or (path.exists() and _claim(path) is None):
        raise UserError(
            f"{path} exists but names no process (not written by qshpc): if no "
            f"`{what}` of the job is under way, remove it (rm '{path}')"
        )
    raise UserError(f"job {job_dir.name} keeps being locked and released ({what}): try again")


def _keep_fresh(lock: Any, stop: threading.Event) -> None:
    """Refresh ``lock`` every :data:`REFRESH_S` seconds until ``stop`` is set."""
    while not stop.wait(REFRESH_S):
        with contextlib.suppress(Exception):
            lock.refresh()


def wait_step(job_dir: Path, timeout: float = LIFETIME_S + CLOCK_SLOP_S) -> None:
    """Return once no live process holds ``job_dir``'s :func:`step_lock` (at most ``timeout``
    seconds): a cancel then sees what the resume under way did (hunt14a: ``qshpc cancel``
    during a ``submit --resume`` said "already ended FAILED", and the resumed job ran)."""
    path = job_dir / RESUME_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = _claim(path)
        if claim is None or _claimed_here_dead(claim):
            return
        try:
            if path.stat().st_mtime + CLOCK_SLOP_S < time.time():
                return  # lapsed: its holder stopped (flufl.lock sets the mtime ahead)
        except OSError:
            return
        time.sleep(0.1)


class JobLock:
    """The lock of one job, held by this process (rank 0 of a run).

    Args:
        job_dir: The job directory (it must exist).
        command: What holds it, for the refusal message (``qshpc run``, ``--resume``).
        batch: The batch system's record of this run (:data:`Batch`), or None.
    """

    def __init__(
        self, job_dir: Path, command: str = "qshpc run", batch: Batch | None = None
    ) -> None:
        self.job_dir = Path(job_dir)
        self.command = command
        self.batch = dict(batch or {})
        self._lock: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None  # why the lock was lost while held (another run broke it)

    def acquire(self) -> JobLock:
        """Take the lock, taking over a stale one; return self.

        Raises:
            JobLockedError: A live run holds it: one line naming the holder.
            StoreError: The job directory cannot hold a lock (permissions, a
                full disk).
        """
        from flufl.lock import TimeOutError

        path = self.job_dir / LOCK_FILE
        tries = 0
        fold_wait = time.monotonic() + LIFETIME_S
        while tries < 5:
            tries += 1
            lock = _flufl_lock(path)
            try:
                lock.lock(timeout=timedelta(seconds=0))
            except TimeOutError:
                holder = read_holder(self.job_dir)
                if holder is None:
                    self._foreign(path)  # released meanwhile, or a file that is not a claim
                    continue
                if _stale(self.job_dir, holder, self.batch):
                    self._break(path, holder)
                    continue
                if (
                    holder.command in _NO_RUN
                    and self.command not in _NO_RUN
                    and time.monotonic() < fold_wait
                ):
                    # a read folding an ended job's journal (qshpc.store.refold): brief,
                    # and no run: wait for it rather than refuse a --resume
                    tries -= 1
                    time.sleep(0.1)
                    continue
                raise JobLockedError(self._refusal(holder), holder) from None
            except OSError as exc:
                raise _claim_failed(lock, self.job_dir, exc, "") from None
            self._lock = lock
            try:
                self._write_holder()
            except OSError as exc:
                self.release()
                raise StoreError(
                    f"cannot lock job {self.job_dir}: {exc.strerror or exc} ({_room(self.job_dir)})"
                ) from None
            self._thread = threading.Thread(target=self._refresh, name="qshpc-lock", daemon=True)
            self._thread.start()
            return self
        raise JobLockedError(f"job {self.job_dir} keeps being locked and released: try again")

    def _refusal(self, holder: Holder) -> str:
        from qshpc.store.jobref import job_ref
        from qshpc.text import shown

        job = job_ref(self.job_dir)  # what `qshpc wait` takes
        return (
            f"job {job} is already running ({holder.describe()}"
            + (f", `{shown(holder.command)}`" if holder.command else "")
            + f"): a job has one writer. Wait for it (`qshpc wait {job}`) or cancel it "
            f"(`qshpc cancel {job}`)"
        )

    def _foreign(self, path: Path) -> None:
        """A lock file that names no holder (not flufl.lock's: ``touch job.lock``, a copy).

        Nothing refreshes it: once it is older than the clock slop it is removed
        (under the break lock, if it is still the same file); until then the
        run is refused, saying what to do.
        """

        try:
            st = path.stat()
        except FileNotFoundError:
            return  # released meanwhile
        if st.st_mtime + CLOCK_SLOP_S >= time.time():
            raise JobLockedError(
                f"{path} exists but names no run (it was not written by qshpc); if no run uses "
                f"this job, remove it (rm '{path}'), or wait {CLOCK_SLOP_S:.0f} s"
            )
        guard = self._break_guard()
        if guard is None:
            return
        try:
            now = path.stat()
            if (now.st_ino, now.st_mtime) == (st.st_ino, st.st_mtime) and _claim(path) is None:
                path.unlink()
        except FileNotFoundError:
            pass
        finally:
            guard.unlock(unconditionally=True)

    def _break_guard(self) -> Any:
        """The lock under which a stale lock is removed, held; None while another holds it.

        Raises:
            StoreError: It cannot be made (a full disk: on 28d9727 a ``--resume`` of a
                killed job on a full disk was an ``OSError`` traceback, hunt13c).
        """
        from flufl.lock import TimeOutError

        guard = _flufl_lock(self.job_dir / BREAK_FILE)
        guard.lifetime = timedelta(seconds=15)
        try:
            guard.lock(timeout=timedelta(seconds=5))
        except TimeOutError:
            return None
        except OSError as exc:
            raise _claim_failed(
                guard, self.job_dir, exc, "taking over the lock its last run left; "
            ) from None
        return guard

    def _break(self, path: Path, holder: Holder) -> None:
        """Remove a stale lock, unless another breaker or a new holder got there first."""

        guard = self._break_guard()
        if guard is None:
            return  # someone else is breaking it: look again
        try:
            claim = _claim(path)
            if claim == (holder.host, holder.pid):
                try:
                    winner = _read_lock(path)
                    path.unlink()
                    if winner:
                        Path(winner).unlink(missing_ok=True)  # the dead holder's claim file
                except FileNotFoundError:
                    pass
        finally:
            guard.unlock(unconditionally=True)

    def _write_holder(self) -> None:
        info = Holder(
            host=_HOST,
            pid=os.getpid(),
            since=time.time(),
            slurm_job=slurm_run_id(self.batch),  # an array element's own id: A_T
            slurm_restarts=_restarts(self.batch),
            start_ticks=start_ticks(os.getpid()),
            command=self.command,
            slurm_cluster=self.batch.get("SLURM_CLUSTER_NAME") or None,
            pidns=PIDNS,
            folder=folder_id(self.job_dir),
            path=os.path.abspath(self.job_dir),
        )
        from qshpc.store import perms

        # (through a temporary file of its own: the pid's, opened O_TRUNC, could be a FIFO)
        perms.write_atomic(self.job_dir / HOLDER_FILE, json.dumps(asdict(info)).encode())

    def _refresh(self) -> None:
        from flufl.lock import NotLockedError

        while not self._stop.wait(REFRESH_S):
            lock = self._lock
            if lock is None:
                return
            try:
                lock.refresh()
            except NotLockedError:
                self.lost = (
                    f"the lock of job {self.job_dir} was taken by another run "
                    f"({(read_holder(self.job_dir) or Holder('?', 0)).describe()})"
                )
                return
            except OSError:
                continue  # a full disk or a flaky NFS: try again at the next refresh

    def check(self) -> str | None:
        """Why this lock is no longer ours (another run broke it), or None while it is.

        The refresh thread notices within :data:`REFRESH_S`; the writer asks here
        too before it replaces ``job.h5``, so a run that was stopped (SIGSTOP, a
        frozen node) for longer than the lifetime never overwrites the store of
        the run that took over.
        """
        if self.lost is None and self._lock is not None:
            try:
                held = self._lock.is_locked
            except OSError:
                return None  # cannot tell (a flaky NFS): the refresh thread decides
            if not held:
                self.lost = (
                    f"the lock of job {self.job_dir} was taken by another run "
                    f"({(read_holder(self.job_dir) or Holder('?', 0)).describe()})"
                )
        return self.lost

    def release(self) -> None:
        """Give the lock up (nothing when it is not held)."""
        self._stop.set()
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            (self.job_dir / HOLDER_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        try:
            lock.unlock(unconditionally=True)
        except OSError:
            pass

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
