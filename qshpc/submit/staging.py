"""Copy a program's working directory into the job directory at submit time.

A queued job then runs the files as they were when it was submitted, even if
the user edits them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from qshpc.errors import UserError

#: Names never staged.
SKIP = frozenset({".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
#: Refuse to stage more than this.
MAX_STAGE_BYTES = 1 << 30
#: Say how much is staged above this (review28 F17: a 300 MB folder went into every job
#: and every array element without a word).
WARN_STAGE_BYTES = 100 << 20


def _skipped(path: Path, name: str, exclude: Iterable[Path], folder: bool = True) -> bool:
    """Whether ``path/name`` is left out of the staged copy (``folder``: it may be a folder;
    a file is never a virtual environment, and is not stat'ed for one)."""
    if name in SKIP:
        return True
    full = (path / name).absolute()
    if any(full == e for e in exclude):
        return True
    # A virtual environment: the job runs the interpreter that submitted it, and a
    # venv's copy would not run from another folder anyway (its scripts name its path).
    return folder and os.path.isfile(full / "pyvenv.cfg")


def warn_size(src: Path, size: int, copies: int = 1) -> None:
    """Say on stderr how much of ``src`` is staged, when that is a lot."""
    if size <= WARN_STAGE_BYTES:
        return
    import sys

    each = f"{size / 2**20:.0f} MB"
    many = f" into each of the {copies} jobs ({size * copies / 2**20:.0f} MB in all)"
    print(
        f"qshpc: staging {each} of working_dir {src}{many if copies > 1 else ' into the job'}: "
        "point --working-dir at a folder with only the program and its small inputs "
        "(read large data from shared storage by path)",
        file=sys.stderr,
    )


def check_entry_staged(src: Path, entrypoint: Path, exclude: Iterable[Path] = ()) -> None:
    """Refuse a program that lies in a folder staging leaves out (review29 F6: it was
    refused after the copy, as an entrypoint "not found" in the job's folder).

    Raises:
        UserError: A folder on the way from ``src`` to the program is not staged.
    """
    excl = [e.resolve() for e in exclude]
    here = src
    for part in entrypoint.parts[:-1]:
        if _skipped(here, part, excl):
            why = (
                "a virtual environment (it holds pyvenv.cfg)"
                if os.path.isfile(here / part / "pyvenv.cfg")
                else "a folder qshpc never stages"
            )
            raise UserError(
                f"program {entrypoint} lies in {here / part}, {why}, which is not copied into "
                "the job: move the program out of it, or give another --working-dir"
            )
        here = here / part


def staged_size(src: Path, exclude: Iterable[Path] = (), limit: int = MAX_STAGE_BYTES) -> int:
    """Bytes that :func:`stage` would copy (stops counting past ``limit``).

    Symbolic links are copied as links, so they count as nothing.
    """
    excl = [e.resolve() for e in exclude]
    total = 0
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = [d for d in dirs if not _skipped(here, d, excl) and not (here / d).is_symlink()]
        for name in files:
            p = here / name
            if _skipped(here, name, excl, folder=False) or p.is_symlink():
                continue
            try:
                total += p.stat().st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def check_size(src: Path, exclude: Iterable[Path] = (), limit: int = MAX_STAGE_BYTES) -> int:
    """Refuse a working directory too large to stage; the bytes it stages.

    Raises:
        UserError: ``src`` holds more than ``limit`` bytes to copy.
    """
    size = staged_size(src, exclude, limit)
    if size > limit:
        raise UserError(
            f"working_dir {src} holds more than {limit / 2**30:g} GiB: it is copied into the job "
            "at submit time, so point working_dir at a folder with only the program and its "
            "small inputs (read large data from shared storage by path instead)"
        )
    return size


def _copy_error(entry: object) -> str:
    """One of ``shutil.Error``'s ``(src, dst, why)`` as ``src: why`` (review50 F5: the raw
    tuple was printed)."""
    if isinstance(entry, tuple) and len(entry) == 3:
        why = str(entry[2])
        name = str(entry[0])
        return why if name in why else f"{name}: {why}"
    return str(entry)


def _full_fix(text: str, dest: Path, size: int) -> str:
    """For a copy of ``size`` bytes stopped by a full disk: how full, and what to do."""
    if "No space left on device" not in text and "Disk quota exceeded" not in text:
        return ""
    from qshpc.store.space import free_text

    free = free_text(dest.parent)
    room = f" ({free} as the copy stopped)" if free else ""
    return (
        f"; the file system of the store{room} has no room for the {size / 1e6:.1f} MB to copy: "
        "free space (df -h) or inodes (df -i), or copy less, then submit again "
        "(nothing was submitted; the job's folder is removed)"
    )


def stage(
    src: Path, dest: Path, exclude: Iterable[Path] = (), limit: int = MAX_STAGE_BYTES
) -> None:
    """Copy ``src`` to ``dest`` (which must not exist), skipping .git, __pycache__, virtual
    environments and ``exclude``.

    Raises:
        UserError: The folder holds more than ``limit`` bytes, or cannot be copied.
    """
    excl = [e.resolve() for e in exclude]
    size = check_size(src, excl, limit)

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        try:  # which names are folders (or links to one): the folder's entries say, unstat'ed
            with os.scandir(folder) as entries:
                dirs: set[str] | None = {e.name for e in entries if e.is_dir()}
        except OSError:
            dirs = None  # (copytree read it a moment ago) each name is then checked
        return {n for n in names if _skipped(here, n, excl, dirs is None or n in dirs)}

    try:
        shutil.copytree(src, dest, symlinks=True, ignore=ignore)
    except shutil.Error as exc:
        errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        first = _copy_error(errors[0]) if errors else str(exc)
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(
            f"cannot copy working_dir {src} into {dest}: {first}{extra}{_full_fix(first, dest, size)}"
        ) from None
    except OSError as exc:
        raise UserError(
            f"cannot copy working_dir {src} into {dest}: {exc}{_full_fix(str(exc), dest, size)}"
        ) from None
    # Nobody else may write the staged program (a umask of 002 left the group's write
    # bit): `qshpc submit --resume` runs only what no other user could have written.
    for folder, dirs, files in os.walk(dest):
        for name in (".", *dirs, *files):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode) and mode & 0o022:
                    os.chmod(path, stat.S_IMODE(mode) & ~0o022)
