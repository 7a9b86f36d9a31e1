"""What a command does with qshpc's own errors: one line on stderr and an exit code (no typer).

Also what it does when its own output cannot be written (review30 F4): stdout on a
full disk (``qshpc result J --json > res.json`` in a batch script) gave a Python
traceback from every read command, and a full stderr turned the exit code of a bad
job id (2) into 1.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

FULL = (errno.ENOSPC, errno.EDQUOT)
DEV_FULL = (1, 7)  # Linux's /dev/full (major, minor)


def exit_code(exc: BaseException) -> int | None:
    """Print ``qshpc: error: ...`` for qshpc's own errors and return their exit code.

    2 for bad input or a store that cannot be read, 1 for a failed job, 3 for a
    timeout, 1 for any other qshpc error; None (nothing printed) for the rest,
    which the caller re-raises.
    """
    from qshpc.errors import JobFailedError, QshpcError, StoreError, UserError

    if isinstance(exc, (UserError, StoreError)):
        code = 2
    elif isinstance(exc, JobFailedError):
        code = 1
    elif isinstance(exc, TimeoutError):
        code = 3
    elif isinstance(exc, QshpcError):
        code = 1
    else:
        return None
    from qshpc.text import shown_lines

    # The text may hold what the job stored (a failed job's error, its program's
    # exception): control characters escaped, never sent to the terminal raw.
    say(f"qshpc: error: {shown_lines(exc)}")
    return code


def say(line: str) -> None:
    """``line`` on stderr; nothing when stderr cannot take it (a full disk): the exit
    code is all that is left to tell, and it must stay the one the error has."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # ValueError: a closed stderr
        quiet_stderr()


def quiet_stderr() -> None:
    """Make ``sys.stderr`` /dev/null, so that nothing later (a progress line, a warning,
    Python's flush at exit, which would make the exit code 120) fails on it."""
    try:
        sys.stderr = open(os.devnull, "w")  # kept till the process ends
    except OSError:
        pass


def no_room(fd: int, exc: BaseException | None = None) -> bool:
    """True when writing file descriptor ``fd`` fails (or would fail) for want of room:
    it is /dev/full, or a file on a file system with no free block or inode left, or a
    file whose write ``exc`` said is over the user's quota.

    Only a regular file's file system is asked (a pipe's says it has no room, always).
    """
    code = getattr(exc, "errno", None)
    if exc is not None and code not in FULL:
        return False
    try:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode):
            return (os.major(st.st_rdev), os.minor(st.st_rdev)) == DEV_FULL
        if not stat.S_ISREG(st.st_mode):
            return False
        if code == errno.EDQUOT:
            return True
        vfs = os.fstatvfs(fd)
    except OSError:
        return False
    return vfs.f_bavail == 0 or (vfs.f_files > 0 and vfs.f_favail == 0)


def output_lost(exc: BaseException) -> int | None:
    """For an error from writing stdout for want of room: say so in one line and return
    the exit code (1); None for any other error, which the caller re-raises."""
    if not isinstance(exc, OSError) or not no_room(1, exc):
        return None
    try:
        name = os.readlink("/proc/self/fd/1")
    except OSError:
        name = ""
    shown = f"stdout, {name}" if name.startswith("/") else "stdout"
    reason = exc.strerror or str(exc)
    say(
        f"qshpc: error: cannot write the output ({shown}): {reason}: free some space "
        "or send the output elsewhere, and run the command again"
    )
    try:  # what stdout still holds would fail again in Python's flush at exit
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    return 1
