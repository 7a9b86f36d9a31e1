"""The file a user names with ``--out`` (``qshpc plot``, ``qshpc report``, ``plot --timeline``).

One writer for all three (review30 F3): review29 F4 had fixed only ``plot``,
and the report's writer still renamed its file over whatever the name held, so
a link, a FIFO or a device node (``/dev/full`` as root) became a plain file.

- a link is followed: its target is written, the link kept;
- a FIFO or a character device (``--out /dev/stdout``, a pipe of the shell's
  ``>(display)``, a terminal) is written to as it is, never replaced (as ``plot``
  did since review29 F4; the report's rename had made ``/dev/full`` a plain file);
- a block device, a socket or a folder at the name (after links) is refused,
  naming ``--out``, and left as it was;
- a regular file is drawn into a temporary file of its own beside the target
  (``O_EXCL|O_NOFOLLOW``: never a neighbour's planted link), then renamed over
  it, so a full disk leaves the old file whole.

Without ``--out`` the file goes into the job's folder (``report.html``,
``timeline.png``, ``plot.png``): there, as for every file qshpc writes in a job
folder, anything but a regular file is refused (:func:`write_in_job`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from qshpc.errors import UserError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def out_path(out: str | os.PathLike[str] | None, default: Path) -> Path:
    """``out`` (``~`` expanded; a folder: ``default``'s name in it), else ``default``
    (as it is: a folder there is refused by :func:`write_in_job`).

    Raises:
        UserError: The folder it goes into does not exist.
    """
    path = Path(out).expanduser() if out is not None else default
    if out is not None and path.is_dir():
        path = path / default.name
    if not path.parent.is_dir():
        raise UserError(
            f"cannot write {path}: folder {path.parent} does not exist; create it or pick another --out"
        )
    return path


def _streamed(path: Path, fill: Callable[[BinaryIO], object]) -> bool:
    """Write ``fill`` into ``path`` as it is when it names a FIFO or a character device
    (after links: ``/dev/stdout`` is a link to this process's pipe or terminal); True then.

    Raises:
        UserError: It cannot be opened or written (``/dev/full``: no room).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # (missing, or not to be looked at: the regular path says why)
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        return False
    try:
        with open(path, "wb") as f:  # (a FIFO waits for its reader, as ``cat > fifo`` does)
            fill(f)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; pick another --out") from None
    return True


def write_out(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` (a link: its target) with ``fill(file)``, whole or not at all.

    The file gets the usual mode (0666 less the umask), as ``open`` gives.

    Raises:
        UserError: ``path`` is a folder, a block device or a socket (a FIFO or a character
            device is written to as it is), or cannot be written.
    """
    if _streamed(path, fill):
        return
    target = Path(os.path.realpath(path))
    shown = f"{path} (a link to {target})" if path.is_symlink() else str(path)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(
            f"cannot write {shown}: {exc.strerror or exc}; pick another --out"
        ) from None
    kind = next((name for test, name in _KINDS if mode is not None and test(mode)), None)
    if kind is not None:
        raise UserError(
            f"cannot write {shown}: it is {kind}, not a regular file, and is left as it is; "
            "--out takes a file name (a link to a file is written where it points), a FIFO "
            "or a character device (/dev/stdout), or a folder: pick another --out"
        )
    from qshpc.store.perms import write_atomic_with

    try:
        write_atomic_with(target, fill, mode=0o666)  # (the umask's, as ``open`` gives)
    except OSError as exc:
        raise UserError(
            f"cannot write {shown}: {exc.strerror or exc}; pick another --out"
        ) from None


_NOT_REGULAR = (
    (stat.S_ISLNK, "a link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    *_KINDS,
)


def write_in_job(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path``, a file of the job's folder (the default of ``--out``), with
    ``fill(file)``: beside it, then renamed over it, whole or not at all.

    review50 F8: ``--out``'s rules (a link written where it points, a FIFO written to)
    held for the job folder's ``report.html`` too: a FIFO there hung ``qshpc report J``
    and a link had the file it named overwritten. In a job folder, as by every other
    writer of one (:func:`qshpc.store.seal.create_new`), anything but a regular file is
    refused now, and left as it is; the rename never writes through what was put there
    after the check.

    Raises:
        UserError: ``path`` is not a regular file (naming what it is and the way on), or
            it cannot be written.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; pick an --out") from None
    kind = next((name for test, name in _NOT_REGULAR if mode is not None and test(mode)), None)
    if kind is not None:
        if kind == "a link":
            kind = f"a link (to {os.readlink(path)})"
        raise UserError(
            f"cannot write {path}: it is {kind}, not a regular file, and is left as it is (in "
            "a job's folder only regular files are written, never through a link or into a "
            f"FIFO): remove it ({'rm -r' if kind == 'a folder' else 'rm'} {path}), or name "
            "the file to write with --out"
        )
    from qshpc.store.perms import write_atomic_with

    try:
        write_atomic_with(path, fill, mode=0o666)  # (the umask's, as ``open`` gives)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; pick an --out") from None
