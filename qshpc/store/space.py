"""A full disk: telling it from other write errors, saying so, and a reserve to end the job.

When the file system of a job fills up, the job must still record how it
ended (FAILED, "no space left on ...") and keep every result committed
before. The writer keeps a small reserve file (:data:`RESERVE_BYTES`,
preallocated) beside the store; on the first ENOSPC it truncates the journal
back to its last whole frame, deletes the reserve and writes the final state
into the space that frees.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qshpc.errors import StoreError

_LOST: list[str] = []  # what this process could not write for a full disk (its output)
_WATCHES: list[Callable[[], None]] = []  # asked first by lost_output


def note_lost_output(message: str) -> None:
    """Record that this process's output could not be written (a rank's log on a full disk)."""
    if not _LOST:
        _LOST.append(message)


def watch_lost_output(check: Callable[[], None]) -> None:
    """Have :func:`lost_output` call ``check`` first: a rank's log copier runs in a process
    of its own (:mod:`qshpc.runtime.logtee`), and says a full disk when asked."""
    _WATCHES.append(check)


def lost_output() -> str | None:
    """The message of :func:`note_lost_output`, or None."""
    for check in _WATCHES:
        check()
    return _LOST[0] if _LOST else None


RESERVE_FILE = "job.reserve"
RESERVE_BYTES = 1 << 20
_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) says the disk or the quota is full (HDF5's text too)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL:
            return True
        text = str(e)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        if "errno = 28" in text or "errno = 122" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def free_text(path: Path) -> str:
    """``3.0 GB, 12.0 MB free`` for the file system holding ``path`` (empty if unknown)."""
    for p in (path, *path.parents):
        try:
            usage = shutil.disk_usage(p)
        except OSError:
            continue
        text = f"{_human(usage.total)}, {_human(usage.free)} free"
        try:
            vfs = os.statvfs(p)
        except OSError:
            return text
        if vfs.f_files and not vfs.f_favail:  # out of inodes, with bytes to spare (hunt13c)
            text += f", but no room for a new file: all {vfs.f_files:,} inodes used (df -i)"
        return text
    return ""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


#: What to do after a full disk stopped a job that runs (the default of :func:`full_error`).
RESUME_FIX = (
    "every result committed before is kept: free space (df -h), then resume the job "
    "(qshpc run PROGRAM --resume JOB)"
)


def start_fix(path: Path, slack: int, started: bool) -> str:
    """What to do when a full disk stops a run from opening ``path`` (``job.h5``) to write.

    review30 F8: a job on a small file system (a 300 KB ``QSHPC_HOME``) was told to
    "resume the job" though it never started, and not what room a run needs.

    Args:
        path: The store.
        slack: What the rewrite allocates beyond a copy of the store.
        started: A run of the job recorded results before (a resume): else nothing
            was computed.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    need = (
        f"a run needs about {_human(size + slack)} free to start (a copy of {path.name} "
        f"while it is rewritten, and {slack >> 10} KiB for what the run adds), and "
        f"{RESERVE_BYTES >> 20} MiB more for its reserve ({RESERVE_FILE}), which lets it "
        f"record its end should the disk fill; free space (df -h {path.parent}), then "
    )
    if started:
        return (
            need
            + "resume the job (qshpc run PROGRAM --resume JOB): every result committed before is kept"
        )
    return need + "run the program again: this job never started, nothing was computed"


def full_error(path: Path, what: str, fix: str = RESUME_FIX) -> StoreError:
    """The one-line error for a full disk while doing ``what`` to ``path``, and ``fix``."""
    free = free_text(path.parent)
    return StoreError(
        f"no space left on device: the file system of {path.parent} ({free}) cannot take "
        f"the next write to {path} ({what}); {fix}"
    )


def room_after(fd: int, length: int) -> None:
    """Make sure ``length`` bytes can be appended to the file ``fd`` (its size unchanged).

    HDF5 must never meet a full disk itself: a failed write part way through
    its metadata cache leaves the library in a state that can crash the process
    at exit. So before HDF5 appends to a file, the space is allocated here
    (``fallocate`` with ``FALLOC_FL_KEEP_SIZE``), where a full disk is a clean
    ENOSPC. Without ``fallocate`` (some NFS) the free space is checked instead.

    Raises:
        OSError: ENOSPC when the file system cannot hold ``length`` more bytes.
    """
    size = os.fstat(fd).st_size
    if _fallocate_keep_size(fd, size, length):
        return
    free = os.fstatvfs(fd)
    if free.f_bavail * free.f_frsize < length:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@functools.cache
def _libc_fallocate() -> Any:
    """libc's ``fallocate``, looked up once per process (None when there is none).

    First in the symbols the process already has (``dlopen(NULL)``: Python links
    libc), so that the usual case does not run ``ctypes.util.find_library``, which
    starts ``ldconfig -p`` (2-8 ms each time; the store used to do it on every
    open for writing and every finalize).
    """
    try:
        import ctypes
    except ImportError:  # pragma: no cover - a Python without ctypes
        return None
    fallocate = None
    for name in (None, "libc.so.6"):
        try:
            fallocate = ctypes.CDLL(name, use_errno=True).fallocate
            break
        except (OSError, AttributeError):
            continue
    if fallocate is None:
        try:
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fallocate = libc.fallocate
        except (OSError, AttributeError):
            return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return fallocate


def _fallocate_keep_size(fd: int, offset: int, length: int) -> bool:
    """fallocate(2) with FALLOC_FL_KEEP_SIZE; False when the system or file system lacks it."""
    if length <= 0:
        return True
    fallocate = _libc_fallocate()
    if fallocate is None:
        return False
    if fallocate(fd, 1, offset, length) == 0:  # 1: FALLOC_FL_KEEP_SIZE
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in _FULL:
        raise OSError(err, os.strerror(err))
    return False


def make_reserve(job_dir: Path) -> Path | None:
    """Preallocate the reserve file in ``job_dir`` (None when the disk cannot spare it).

    Made anew, never through what is there: on e7cd270 a ``job.reserve`` that was a
    symlink had the file it named truncated and filled with 1 MiB of zeros, and a FIFO
    made the run (a ``--resume``) wait for good (hunt16).
    """
    from qshpc.store import perms

    path = job_dir / RESERVE_FILE
    try:
        path.unlink(missing_ok=True)  # a killed writer's, or a link, a FIFO: never opened
        fd = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            perms.file_mode(),
        )
    except OSError:  # a folder in its place, a read-only folder: no reserve
        return None
    try:
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.write(fd, bytes(RESERVE_BYTES))  # no fallocate here (some NFS): real zeros
        return path
    except OSError:
        os.close(fd)
        fd = -1
        path.unlink(missing_ok=True)
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def drop_reserve(job_dir: Path) -> None:
    """Delete the reserve file (frees its space)."""
    try:
        (job_dir / RESERVE_FILE).unlink(missing_ok=True)
    except OSError:
        pass
