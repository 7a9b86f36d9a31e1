"""The data folder: quantum-serverless's files API on the shared file system.

quantum-serverless's gateway kept a ``/data`` folder per user: programs wrote
files there and the client listed, uploaded, downloaded and deleted them. qshpc's
data folder is ``$QSHPC_HOME/data`` (``QSHPC_DATA`` overrides it), on the
same shared storage as the job store, so the program on rank 0, the workers on
any node and the client on the login node all see it. Inside a program,
:func:`qshpc.data_dir` names it.

Only plain names of regular files inside that folder are accepted: no path
separators, no ``..``, no hidden names, and links are never followed (a link
planted in the folder cannot make ``file_download`` read a file outside it).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Any, BinaryIO

from qshpc.errors import UserError
from qshpc.jobs.paths import data_dir as _data_dir
from qshpc.jobs.paths import data_root

_CHUNK = 1 << 20


def data_dir(create: bool = True) -> Path:
    """The data folder (created when missing, unless ``create`` is False)."""
    return _data_dir() if create else data_root()


def check_name(name: object, what: str = "file name") -> str:
    """Return ``name`` if it names a file directly inside the data folder.

    Raises:
        UserError: A path, ``..``, a hidden or empty name, a NUL byte.
    """
    if not isinstance(name, str):
        raise UserError(f"{what} must be a string, got {type(name).__name__}")
    bad = (
        not name
        or name in (".", "..")
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or len(name.encode()) > 255
    )
    if bad:
        raise UserError(
            f"bad {what} {name!r}: give the plain name of a file in the data folder "
            "(no '/', no '..', not hidden); see client.files()"
        )
    return name


def check_function(function: object, what: str = "function") -> None:
    """Accept qiskit-serverless's ``function`` (0.20 on) or ``provider`` (0.18) argument.

    qiskit-serverless kept a folder per function (or provider); qshpc has one data
    folder per user, so the argument names no other folder and is not used. A
    QiskitFunction (a Program), its title, or None is accepted.

    Raises:
        UserError: Anything else (a number, a path), naming what is accepted.
    """
    from qshpc.jobs.spec import Program

    if function is None or isinstance(function, str | Program):
        return
    raise UserError(
        f"{what} must be a QiskitFunction (client.function(title)) or its title, got "
        f"{type(function).__name__}: qshpc has one data folder per user, so any function "
        "names the same folder"
    )


#: ``file_download``'s arguments after the file, in qiskit-serverless's two orders.
_OLD_ORDER = ("target_name", "download_location", "provider")  # 0.10 to 0.18
_NEW_ORDER = ("function", "target_name", "download_location")  # 0.20 on


def download_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, str]:
    """``(target_name, download_location)`` from ``file_download(file, *args, **kwargs)``.

    Both of qiskit-serverless's orders are accepted: ``(file, target_name,
    download_location)`` (0.10 to 0.18, with ``provider=``) and ``(file, function,
    target_name, download_location)`` (0.20 on); a QiskitFunction second tells them apart.

    Raises:
        UserError: An unknown keyword, too many arguments, one given twice, a bad function.
    """
    unknown = sorted(set(kwargs) - {*_OLD_ORDER, *_NEW_ORDER})
    if unknown:
        raise UserError(
            f"file_download() got an unknown argument {unknown[0]!r}: it takes "
            "(file, function, target_name=None, download_location='./')"
        )
    from qshpc.jobs.spec import Program

    order = _NEW_ORDER if args and isinstance(args[0], Program) else _OLD_ORDER
    if len(args) > len(order):
        raise UserError(
            f"file_download() takes at most {len(order) + 1} positional arguments "
            f"(file, {', '.join(order)}), got {len(args) + 1}"
        )
    given = dict(zip(order, args, strict=False))
    twice = sorted(set(given) & set(kwargs))
    if twice:
        raise UserError(f"file_download() got two values for {twice[0]!r}: give it once")
    given.update(kwargs)
    check_function(given.get("function"))
    check_function(given.get("provider"), "provider")
    return given.get("target_name"), given.get("download_location", "./")


def list_files() -> list[str]:
    """Names of the regular files in the data folder, sorted (links and folders are left out)."""
    root = data_dir(create=False)
    if not root.is_dir():
        return []
    names = []
    try:
        with os.scandir(root) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_file(follow_symlinks=False):
                    names.append(entry.name)
    except OSError as exc:  # hunt21b: a folder one may not read was a PermissionError
        raise UserError(f"cannot list the data folder {root}: {exc.strerror or exc}") from None
    return sorted(names)


def upload(path: str | os.PathLike[str]) -> str:
    """Copy a file into the data folder (replacing one of the same name); return its name.

    Raises:
        UserError: ``path`` is not a readable regular file, or its name is not allowed.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise UserError(f"cannot upload {src}: not a file")
    name = check_name(src.name)
    root = data_dir()
    tmp = root / f".upload-{secrets.token_hex(6)}"
    try:
        with open(src, "rb") as fin, _create(tmp) as fout:
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, root / name)
    except OSError as exc:
        _unlink(tmp)  # hunt23b: EROFS here too (even for a missing one) was the traceback
        raise UserError(f"cannot upload {src} to {root}: {exc.strerror or exc}") from None
    return name


def download(file: str, target_name: str | None = None, download_location: str = "./") -> str:
    """Copy ``file`` from the data folder to ``download_location``; return the name written.

    The default name is ``downloaded_<8 hex>_<file>``, as quantum-serverless's.

    Raises:
        UserError: A bad name, no such file, a link or folder in its place, an unwritable target.
    """
    check_name(file)
    out_name = check_name(target_name, "target name") if target_name is not None else None
    out_name = out_name or f"downloaded_{secrets.token_hex(4)}_{file}"
    src = _open_inside(file)
    dest = Path(download_location).expanduser() / out_name
    # Written beside it, then renamed (hunt21b): a full disk left a torn copy under the
    # name (or an older file of that name cut short), and a FIFO there hung the download.
    tmp = dest.with_name(f".{out_name[:200]}.{secrets.token_hex(6)}.part")
    try:
        old = os.lstat(dest)
    except OSError:
        old = None
    if old is not None and stat.S_ISREG(old.st_mode) and not os.access(dest, os.W_OK):
        # the rename would replace what writing could not (a 0444 file of one's own,
        # another user's file in a folder one can write): refused, as writing it was
        os.close(src)
        raise UserError(f"cannot write {dest}: Permission denied (give another target name)")
    try:
        with os.fdopen(src, "rb") as fin, _create(tmp, 0o666) as fout:  # the umask's, as before
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
        if old is not None and stat.S_ISREG(old.st_mode):
            os.chmod(tmp, stat.S_IMODE(old.st_mode))  # an existing file keeps its mode
        os.replace(tmp, dest)
    except OSError as exc:
        _unlink(tmp)
        raise UserError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return out_name


def delete(file: str) -> str:
    """Remove ``file`` from the data folder; return quantum-serverless's message.

    Raises:
        UserError: A bad name, or no such file.
    """
    check_name(file)
    path = data_dir(create=False) / file
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UserError(f"no file {file!r} in the data folder {path.parent}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{file!r} in the data folder is a folder, not a file")
    try:
        path.unlink()
    except FileNotFoundError:
        raise UserError(f"no file {file!r} in the data folder {path.parent}") from None
    except OSError as exc:  # hunt21b: a read-only folder was a PermissionError traceback
        raise UserError(f"cannot delete {path}: {exc.strerror or exc}") from None
    return "Requested file was deleted."


def _open_inside(file: str) -> int:
    root = data_dir(create=False)
    try:
        # O_NONBLOCK: a FIFO in the folder (a program's, a neighbour's) made the
        # download wait for a writer for good (hunt21b); it is refused below
        fd = os.open(root / file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"no file {file!r} in the data folder {root}: see client.files()") from None
    except OSError as exc:  # ELOOP: a link
        what = "is not a regular file" if exc.errno == errno.ELOOP else "cannot be read"
        raise UserError(f"{file!r} in the data folder {what} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{file!r} in the data folder is not a regular file")
    return fd


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _create(path: Path, mode: int | None = None) -> BinaryIO:
    """A new file (never through a link or a FIFO left at ``path``); the store's file mode
    unless ``mode`` is given (the umask applies)."""
    if mode is None:
        from qshpc.store import perms

        mode = perms.file_mode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return os.fdopen(fd, "wb")
