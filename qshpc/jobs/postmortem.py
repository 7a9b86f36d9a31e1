"""What was running when a job's ranks died: which rank, which host, which tasks.

Rank 0's dispatcher appends one line per batch it sends to ``logs/dispatch.log``
(``<rank> <task ids>``); the store holds the tasks that finished. A task sent
to a rank and never finished is one that rank held when it died. The launcher
adds what the MPI launcher reported (which PID died, with which exit code).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

DISPATCH_LOG = "dispatch.log"


def compress_ids(ids: list[str]) -> str:
    """``["3", "4", "5"]`` -> ``"3-5"``; anything not a contiguous run -> comma list."""
    if ids and all(i.isdigit() for i in ids):
        first, last = int(ids[0]), int(ids[-1])
        if last - first == len(ids) - 1 and [str(x) for x in range(first, last + 1)] == ids:
            return f"{first}-{last}" if last != first else ids[0]
    return ",".join(ids)


#: The most task ids one line of ``dispatch.log`` can name (a batch holds at most 512).
MAX_BATCH_IDS = 4096


def expand_ids(text: str) -> list[str]:
    """The inverse of :func:`compress_ids`; ``[]`` for a range no batch can hold.

    A damaged line (``1 0-99999999999``) made ``qshpc status`` of a dead job build
    10**11 ids: 6.5 GB in 30 s, then the OOM killer (hunt13c).
    """
    if "," not in text and "-" in text and text.replace("-", "").isascii():
        a, _, b = text.partition("-")
        if not (a.isdigit() and b.isdigit()) or not 0 <= int(b) - int(a) < MAX_BATCH_IDS:
            return []
        return [str(x) for x in range(int(a), int(b) + 1)]
    return text.split(",")[:MAX_BATCH_IDS]


def dispatch_names(names: list[str]) -> str:
    """The third field of a ``dispatch.log`` line: the batch's function names, comma-joined
    (a name given with ``name=`` may hold spaces or commas: they become ``_``)."""
    return ",".join(re.sub(r"[\s,]", "_", n)[:80] for n in names) or "-"


def held_tasks(job_dir: Path, finished: set[str]) -> dict[int, list[str]]:
    """Tasks sent to each rank that have no stored outcome."""
    return _held(job_dir, finished)[0]


def _held(job_dir: Path, finished: set[str]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """:func:`held_tasks`, and the names of the functions of each rank's unfinished tasks
    (the batches' names, from ``<rank> <task ids> <names>`` lines; a log written before
    session 25 has no names)."""
    held: dict[int, list[str]] = {}
    names: dict[int, list[str]] = {}
    try:
        # damaged bytes are not UTF-8: a traceback in `qshpc status` of a dead job (hunt13c)
        from qshpc.store.seal import open_regular

        # never a FIFO's open or read: `qshpc status` of a dead job waited for good (hunt16)
        with open(open_regular(job_dir / "logs" / DISPATCH_LOG), "rb") as fh:
            lines = fh.read().decode(errors="replace")
    except OSError:
        return held, names
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) not in (2, 3) or not (parts[0].isascii() and parts[0].isdigit()):
            continue  # a torn last line
        ids = [t for t in expand_ids(parts[1]) if t not in finished]
        if ids:
            rank = int(parts[0])
            held.setdefault(rank, []).extend(ids)
            listed = names.setdefault(rank, [])
            for name in parts[2].split(",") if len(parts) == 3 and parts[2] != "-" else []:
                if name not in listed and len(listed) < 5:
                    listed.append(name)
    return held, names


_MPI_ABORT = re.compile(r"application called MPI_Abort\(\S+, (-?\d+)\) - process (\d+)")
_HYDRA = re.compile(r"PID (\d+) RUNNING AT (\S+)\s+=\s+EXIT CODE: (\d+)", re.S)
_SRUN = re.compile(r"srun: error: (\S+): tasks? ([\d,\-]+): (.+)")


def _exit_text(code: int) -> str:
    """How a rank's process ended, from a code as :func:`exit_codes` gives it: ``-S`` a
    signal S, ``N >= 0`` an exit code N (was: any code above 128 read as 128 + a signal:
    a task's ``os._exit(137)`` reported as SIGKILL with out-of-memory advice, ``os._exit(200)``
    as "signal 72", review40 F3)."""
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (killed: out of memory, or kill -9)" if sig == signal.SIGKILL else ""
        hint = " (segmentation fault)" if sig == signal.SIGSEGV else hint
        return f"{name}{hint}"
    return f"exit code {code}{_passed_on(code)}"


def _passed_on(code: int) -> str:
    """For an exit code 129-192 (128 + a signal, as shells and qshpc's workers pass one
    on): both readings, since mpiexec saw an exit, not that signal."""
    sig = _stop_signal(code, any_signal=True)
    if sig is None:
        return ""
    return (
        f" (an exit({code}) by the program or a task, or a {sig.name} passed on as 128 + "
        f"{int(sig)}{_STOPPED if sig in (signal.SIGINT, signal.SIGTERM) else ''})"
    )


_STOPPED = ": a worker stopped twice by Ctrl-C or SIGTERM exits so"


def _stop_signal(code: int, any_signal: bool = False) -> signal.Signals | None:
    """The signal an exit code 129-192 passes on (SIGINT/SIGTERM only, unless ``any_signal``)."""
    try:
        sig = signal.Signals(code - 128) if 128 < code <= 128 + 64 else None
    except ValueError:
        return None
    if sig is None or any_signal or sig in (signal.SIGINT, signal.SIGTERM):
        return sig
    return None


def banner_code(status: int) -> int:
    """The code of mpiexec's ``EXIT CODE: N`` banner as :func:`exit_codes` gives it.

    Hydra prints the banner only for a process that did not exit by itself, and
    N is its raw wait status: the signal, plus 128 when it dumped core (``11`` or
    ``139``: SIGSEGV; an ``os._exit(137)`` gets no banner at all).
    """
    return -(status & 0x7F) if status & 0x7F else status


_EXIT_CODES = re.compile(r"\] Exit codes: ((?:\[\S+\] [\d,]+\s*)+)")  # -print-all-exitcodes
_HOST_CODES = re.compile(r"\[(\S+)\] ([\d,]+)")


def exit_codes(launcher_output: str) -> list[int] | None:
    """Every rank's exit code from mpiexec's ``-print-all-exitcodes`` line (one host), or None.

    Hydra lists each process's wait status, not its exit code: ``256`` is exit
    code 1, ``9`` a SIGKILL. A signal is returned as minus its number (as
    :mod:`subprocess` does), an exit code as itself: ``35072`` (an ``os._exit(137)``)
    is 137, a kill -9 is -9 (read as ``signal 128`` and ``signal 640``, ``exit 1``
    and ``os._exit(5)`` were named signals that do not exist; then, as 128 + the
    signal, an ``os._exit(137)`` was a SIGKILL: review40 F3).
    """
    found = _EXIT_CODES.findall(launcher_output)
    if not found:
        return None
    hosts = _HOST_CODES.findall(found[-1])
    if len(hosts) != 1:
        return None  # several hosts: which rank is where is mpiexec's to say
    return [_wait_status_code(int(c)) for c in hosts[0][1].split(",") if c]


def _wait_status_code(status: int) -> int:
    """A wait status as a code: the exit code, or minus the signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return status


def first_death(launcher_output: str, order: list[tuple[int, int]]) -> tuple[str, int | None]:
    """``rank R (pid P) died: SIGKILL ...`` for the first rank whose process ended, and
    its exit code when mpiexec said it (None otherwise).

    Args:
        launcher_output: What mpiexec printed (its exit-code list, its banner).
        order: ``(rank, pid)`` in the order the ranks ended (not empty).
    """
    listed = exit_codes(launcher_output)
    rank, pid = _dead_first(order, listed, {})[0]
    code = rank_code(launcher_output, rank, pid, listed)
    how = _exit_text(code) if code is not None else "killed or crashed"
    return f"rank {rank} (pid {pid}) died: {how}", code


def rank_code(
    launcher_output: str, rank: int, pid: int | None, listed: list[int] | None = None
) -> int | None:
    """How rank ``rank`` (process ``pid``) ended, as mpiexec said: its exit code, or minus
    the signal that ended it (:func:`exit_codes`; else the banner naming ``pid``); None
    when mpiexec said nothing of it. ``listed``: :func:`exit_codes`, when already read."""
    if listed is None:
        listed = exit_codes(launcher_output)
    if listed is not None and 0 <= rank < len(listed):
        return listed[rank]
    return next(
        (banner_code(int(c)) for p, _, c in _HYDRA.findall(launcher_output) if int(p) == pid),
        None,
    )


def killed_after_end(
    launcher_output: str, order: list[tuple[int, int]], state: str, job_dir: str
) -> str | None:
    """The line ``qshpc run`` says when rank 0 died by a signal after the job's store was
    made final (``state``), or None when it ended by itself (review49 L4).

    Its end is stored, and with it every result; only what rank 0 does after (its
    summary, the program's exit handlers, the timeline) may be missing. The exit code
    stays the job's state's (:func:`qshpc.launch.local._code_of`). ``order``: the ranks
    as their processes ended; a rank 0 that mpiexec killed because a worker ended badly
    first (the job's error names that one) is not said.
    """
    listed = exit_codes(launcher_output)
    pid = next((p for r, p in order if r == 0), None)
    code = rank_code(launcher_output, 0, pid, listed)
    if code is None or code >= 0:
        return None
    for r, _ in order:
        if r == 0:
            break
        if listed is None or not 0 <= r < len(listed) or listed[r] != 0:
            return None  # another rank ended first, not cleanly (or unknown how)
    return (
        f"qshpc: rank 0 (pid {pid}) died: {_exit_text(code)}, after the job's store was made "
        f"final ({state}): every result is kept and its state is stored (qshpc status "
        f"{job_dir}); only rank 0's summary and what the program does at its exit (atexit) "
        "may be missing"
    )


def _dead_first(
    order: list[tuple[int, int]], listed: list[int] | None, held: dict[int, list[str]]
) -> list[tuple[int, int]]:
    """``order`` (the ranks as their processes ended) with the one that died first first.

    With every rank's exit code (``listed``, mpiexec's list, a signal as minus it): a
    rank that exited by itself with a code (not a signal: mpiexec ends the others with SIGKILL) while it
    held unfinished tasks is the one that died, and so is the first to end when it
    exited 0 holding some (a task that called ``os._exit(0)``: it was dropped as "ended
    cleanly", and the next rank mpiexec SIGKILLed was blamed, with out-of-memory advice,
    review36 F1). Else a rank that ended with code 0 is not the one that died: workers
    that said goodbye leave MPI (exit 0) while rank 0 still makes the store final, and
    mpiexec's list shows 0 for a rank it ended last as often as not (seen: ``9,9,0``
    after a kill -9 of rank 1, rank 2 holding a task).
    """
    if listed is None:
        return order
    codes = {r: listed[r] for r, _ in order if 0 <= r < len(listed)}
    exited = [(r, p) for r, p in order if r in held and codes.get(r, -1) > 0]
    if exited:
        return exited + [o for o in order if o not in exited]
    if order and order[0][0] in held and codes.get(order[0][0]) == 0:
        return order
    return [(r, p) for r, p in order if codes.get(r, 1)] or order


def _tasks_text(ids: list[str], names: list[str]) -> str:
    """``task 4 (hard_exit)``, ``tasks 3, 7 (f, g)``: what a rank held when it ended."""
    shown = ", ".join(ids[:5]) + (f" ... ({len(ids)} in all)" if len(ids) > 5 else "")
    return f"task{'s' if len(ids) > 1 else ''} {shown}" + (
        f" ({', '.join(names)})" if names else ""
    )


#: What ends a worker's process by itself while it runs a task (sys.exit does not: it
#: raises SystemExit, which fails the task only).
_EXITED = (
    "a task called os._exit({code}) (or exit({code}) in C code), which ends the worker's "
    "process and the job with it: raise an exception to fail a task"
)


def _stopped(code: int) -> str:
    sig = _stop_signal(code)
    return f"; or, as 128 + {sig.name}{_STOPPED}" if sig is not None else ""


def describe(
    job_dir: Path,
    meta: dict[str, Any],
    finished: set[str],
    launcher_output: str = "",
    order: list[tuple[int, int]] | None = None,
    kept_text: str | None = None,
) -> str:
    """A message naming the rank that died, its host, its signal, the tasks it held, what to do.

    Args:
        job_dir: The job directory (``logs/dispatch.log`` says what each rank held).
        meta: The store's meta (the ranks: rank, host, pid).
        finished: Task ids with a stored result.
        launcher_output: What the MPI launcher printed (its banner, exit codes; srun's errors).
        order: ``(rank, pid)`` in the order the ranks' processes ended, as the
            local launcher saw them (pidfds). The first is the one that died:
            mpiexec ended the others, and its banner names whichever process it
            reaped first (often rank 0), so the banner is used only without it.
        kept_text: What the store keeps, in words, where ``finished`` cannot say it (a store
            that cannot be read: :func:`unreadable_kept`).
    """
    ranks = meta.get("ranks") or []
    by_pid = {int(r["pid"]): r for r in ranks if r.get("pid")}
    held, names = _held(job_dir, finished)
    parts: list[str] = []
    dead: set[int] = set()
    codes: dict[int, int] = {}
    banner = _HYDRA.findall(launcher_output)
    aborted = _MPI_ABORT.findall(launcher_output)
    if aborted:  # MPICH's own line, when it got out of the rank before mpiexec ended them all
        code_s, proc = aborted[0]
        rank = int(proc)
        parts.append(
            f"rank {rank} on host {_host_of(ranks, rank)} called MPI_Abort({code_s}) (a task or "
            "the program did: MPI.COMM_WORLD.Abort), and mpiexec ended every rank"
        )
        dead.add(rank)
        order, banner = [], []  # which rank the others' ends show first says nothing then
    if order:
        listed = exit_codes(launcher_output)
        if listed is not None and len(listed) != len(ranks):
            listed = None
        rank, pid = _dead_first(order, listed, held)[0]
        host = _host_of(ranks, rank)
        if listed is not None and 0 <= rank < len(listed) and listed[rank] >= 0 and rank in held:
            code = listed[rank]  # an exit code (mpiexec's list: a signal is minus it)
            text = (
                f"rank {rank} on host {host} (pid {pid}) exited (code {code}) while running "
                f"{_tasks_text(held[rank], names.get(rank, []))}: "
                + (_said(job_dir, rank) or _EXITED.format(code=code) + _stopped(code))
            )
        else:
            if listed is not None and 0 <= rank < len(listed):
                codes[rank] = listed[rank]
            elif any(int(p) == pid for p, _, _ in banner):
                codes[rank] = next(banner_code(int(c)) for p, _, c in banner if int(p) == pid)
            how = _exit_text(codes[rank]) if rank in codes else "killed or crashed"
            text = f"rank {rank} on host {host} (pid {pid}) died: {how}"
        others = [c for r, c in enumerate(listed or []) if r != rank]
        if len(ranks) > 1 and (listed is None or any(others)):
            text += " (the MPI launcher then ended the other ranks)"
        parts.append(text)
        dead.add(rank)
        banner = []
    for pid, host, code in banner:
        r = by_pid.get(int(pid))
        rank = int(r["rank"]) if r else -1
        dead.add(rank)
        codes[rank] = banner_code(int(code))
        who = f"rank {rank}" if r else f"a process (pid {pid})"
        parts.append(f"{who} on host {host} (pid {pid}) died: {_exit_text(codes[rank])}")
    for host, tasks, what in _SRUN.findall(launcher_output):
        parts.append(f"Slurm task(s) {tasks} on host {host}: {what.strip()}")
        dead.update(int(t) for t in tasks.split(",") if t.isdigit())
    if not parts and len(held) == 1 and 0 not in held and len(ranks) > 1:
        # Nothing says how the ranks ended (the user's own mpiexec, whose output qshpc does
        # not see): the only rank that held unfinished tasks and rank 0 are both named, as
        # equal candidates. Naming the worker "most likely first" (review36 F1) sent the
        # user to an empty log when rank 0, which holds the results and is the one the
        # out-of-memory killer most often picks, was killed (review40 F2): nothing in the
        # store tells the two apart.
        rank = next(iter(held))
        parts.append(
            f"rank {rank} on host {_host_of(ranks, rank)} (pid {_pid_of(ranks, rank)}) was "
            f"running {_tasks_text(held[rank], names.get(rank, []))} when the ranks ended, and "
            "which process ended first is not recorded: this rank (a task that called "
            "os._exit, or exit() in C code; a kill -9, the out-of-memory killer or a crash) "
            f"or rank 0 on host {_host_of(ranks, 0)} (pid {_pid_of(ranks, 0)}), which holds "
            "the results and is the one the out-of-memory killer most often picks (`dmesg` "
            "says), and mpiexec then ended the other; mpiexec's own output says which: its "
            "`PID P RUNNING AT HOST` / `EXIT CODE: N` banner names a process killed by "
            "signal N; with no banner a rank exited by itself (a task's os._exit)"
        )
        dead.update((0, rank))
    # Rank 0 holds no tasks: when the launcher names only it (the first process it
    # saw end), every rank's unfinished tasks are shown.
    only_known = dead & set(held)
    for rank in sorted(held):
        if only_known and rank not in only_known:
            continue
        ids = held[rank]
        shown = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
        parts.append(
            f"rank {rank} on {_host_of(ranks, rank)} held {len(ids)} unfinished task(s): {shown}"
        )
    if not parts and len(ranks) == 1:
        # One process ran it all (`qshpc run --workers 0`, a one-task Slurm job): it ended
        # abruptly and could say nothing itself (review38 F18: `os._exit(4)` at top level).
        parts.append(
            f"its one process (rank 0 on host {_host_of(ranks, 0)}, pid {_pid_of(ranks, 0)}; "
            "with --workers 0 the `qshpc run` itself, whose exit code says how) ended "
            "without finalizing the store: the program or a task called os._exit (or exit() "
            "in C code), crashed, or was killed (the out-of-memory killer: `dmesg` says)"
        )
        dead.add(0)
    if not parts:
        parts.append("the job's processes ended without finalizing the store")
    for rank in sorted(dead) if dead else range(min(len(ranks), 64)):  # a read of each log
        crash = crash_in_log(job_dir, rank)
        if crash:
            parts.append(f"rank {rank}'s log shows {crash}")
            dead.add(rank)
            break
    if _read_only(job_dir):
        parts.append(
            f"the file system of {job_dir} is read-only now (see mount; the kernel turns one "
            "read-only after an I/O error): the job's writes to its store may have failed"
        )
    from qshpc.store.rescue import rescued, rescued_text

    kept = rescued(job_dir, meta.get("working_dir"))
    if kept is not None:  # the store could not take it (hunt23b): where it went instead
        parts.append(
            f"the result passed to save_result could not be stored: it is kept instead in "
            f"{kept}: read it with {rescued_text(kept)}"
        )
    parts.append(kept_text or f"{len(finished)} finished task results are kept in the store")
    parts.append(_what_to_do(meta, job_dir, dead, codes))
    return "; ".join(parts)


def unreadable_kept(job_dir: Path, exc: BaseException) -> str:
    """What is readable of a store that cannot be read as the ranks left it (``exc``), in
    place of a count of finished results (review53 N3: "0 finished task results are kept"
    where 162 were readable)."""
    from qshpc.errors import DamagedStoreError
    from qshpc.jobs.paths import job_ref
    from qshpc.store.reader import damaged_meta

    found = "what is readable is not known"
    if isinstance(exc, DamagedStoreError):
        try:
            found = str(damaged_meta(job_dir, exc, deep=False)["recoverable"])
        except Exception:
            pass
    return (
        f"nothing was folded into its store, which cannot be read as the ranks left it "
        f"({found}): `qshpc status --verify {job_ref(job_dir)}` lists what is readable"
    )


def own_error_end(job_dir: Path, exc: BaseException, code: int) -> str | None:
    """When rank 0 stopped on its own error (its log's last ``qshpc: error:`` line) and
    left the store unreadable (``exc``): what happened; else None.

    review53 N3: rank 0 stopped on its own DamagedStoreError (its line printed just
    before), yet the launcher said every rank was ended by an MPI_Abort and that rank 0
    was "killed or crashed".
    """
    said = _said(job_dir, 0)
    if not said.startswith("its log says: qshpc: error: "):
        said = _raised(job_dir)
    if not said:
        return None
    return (
        f"rank 0 stopped on its own error ({said}; printed whole above, with the way on), and the "
        f"ranks then ended with exit code {code}; {unreadable_kept(job_dir, exc)}"
    )


def _raised(job_dir: Path) -> str:
    """``its log ends: qshpc.errors.DamagedStoreError: ...``: the last line of rank 0's
    log when it is one of qshpc's own errors, uncaught (the end of its traceback), or
    ``""``."""
    try:
        from qshpc.store.seal import open_regular

        with open(open_regular(job_dir / "logs" / "rank-0.out"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    if not re.match(r"qshpc\.errors\.\w+: ", last):
        return ""
    return f"its log ends: {last[:300]}{' ...' if len(last) > 300 else ''}"


def _read_only(job_dir: Path) -> bool:
    """The job's folder is on a file system that is read-only now: mounted so, or turned so
    by the kernel after an I/O error (ext4's ``emergency_ro``, which the mount flags
    statvfs reads do not show), seen by creating (and removing) an empty file there."""
    import errno

    try:
        if os.statvfs(job_dir).f_flag & os.ST_RDONLY:
            return True
        probe = job_dir / f".qshpc-probe-{os.getpid()}-{os.urandom(4).hex()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        os.unlink(probe)
    except OSError as exc:
        return exc.errno == errno.EROFS
    return False


def _said(job_dir: Path, rank: int) -> str:
    """``its log says: qshpc: rank 1 on host vm failed: ...``: the last line qshpc itself
    wrote as a worker ended (an error of its own, not a task's exit), or ``""``."""
    try:
        from qshpc.store.seal import open_regular

        with open(open_regular(job_dir / "logs" / f"rank-{rank}.out"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    said = [
        i
        for i, ln in enumerate(lines)
        if ln.startswith(("qshpc: error: ", f"qshpc: rank {rank} on "))
    ]
    if not said:
        return ""
    line = lines[said[-1]].strip()
    after = [ln.strip() for ln in lines[said[-1] + 1 :] if ln.strip()]
    if line.endswith(" failed:") and after:  # its traceback follows: the exception's line
        line = f"{line} {after[-1]}"
    return f"its log says: {line[:300]}{' ...' if len(line) > 300 else ''}"


_FATAL = re.compile(r"^Fatal Python error: (.+?)\s*$", re.M)
_FRAME = re.compile(r'^  File "(.+)", line (\d+) in (.+?)\s*$')


def crash_in_log(job_dir: Path, rank: int) -> str:
    """``Segmentation fault in f (prog.py, line 7)``: the crash report :mod:`faulthandler`
    wrote at the end of rank ``rank``'s log (see ``qshpc.runtime.logtee``), or ``""``.

    The function named is the innermost frame of the crashed thread outside
    qshpc and Python's own library: the task (or the program's line) that crashed.
    """
    import sysconfig

    try:
        from qshpc.store.seal import open_regular

        with open(open_regular(job_dir / "logs" / f"rank-{rank}.out"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    found = list(_FATAL.finditer(text))
    if not found:
        return ""
    what = found[-1].group(1)
    report = text[found[-1].end() :]
    current = report.find("Current thread")
    lines = report[current:].splitlines()[1:] if current >= 0 else []
    skip = [
        str(Path(__file__).resolve().parents[1]),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
    ]
    for line in lines:
        frame = _FRAME.match(line)
        if frame is None:
            break
        path, lineno, func = frame.groups()
        if not any(path.startswith(s) for s in skip) and not path.startswith("<"):
            return f"{what} in {func} ({path}, line {lineno})"
    return what


def _pid_of(ranks: list[dict[str, Any]], rank: int) -> str:
    return next((str(r.get("pid")) for r in ranks if r.get("rank") == rank), "?")


def _host_of(ranks: list[dict[str, Any]], rank: int) -> str:
    return next((str(r.get("host")) for r in ranks if r.get("rank") == rank), "?")


def _what_to_do(meta: dict[str, Any], job_dir: Path, dead: set[int], codes: dict[int, int]) -> str:
    """One sentence: what to look at and how to finish the job."""
    from qshpc.jobs.paths import job_ref

    logs = ", ".join(f"logs/rank-{r}.out" for r in sorted(dead) if r >= 0) or "logs/"
    hint = ""
    if -signal.SIGKILL in codes.values():
        hint = (
            "SIGKILL is most often the kernel's out-of-memory killer (`dmesg` says): give each "
            "task more memory (fewer workers per node, or @distribute_task(target={'mem': GB})); "
        )
    elif any(-c in (signal.SIGSEGV, signal.SIGBUS) for c in codes.values()):
        hint = "a crash in compiled code (a bug, or memory): "
    return f"{hint}see {logs} in {job_dir}, then `{resume_command(meta, job_ref(job_dir))}` runs only the unfinished tasks"


def resume_command(meta: dict[str, Any], job: str) -> str:
    """The command that resumes the job: ``qshpc submit --resume JOB`` for a job
    ``qshpc submit`` made, else ``qshpc run PROGRAM --resume JOB`` with its program (was
    ``qshpc run --resume JOB``, which typer refuses: Missing argument 'program', hunt14a).

    ``job`` names it as :func:`qshpc.jobs.paths.job_ref` does (its id alone did not resolve
    for a job run with ``--job-dir DIR``: review24 F3)."""
    import shlex

    if meta.get("scheduler") == "slurm" and meta.get("slurm_resources"):
        return f"qshpc submit --resume {job}"
    entry = str(meta.get("entrypoint") or "")
    return f"qshpc run {shlex.quote(entry) if entry else 'PROGRAM'} --resume {job}"
