"""Whether a file qshpc runs (or puts into a batch script) as the user is the user's own.

review50 F0/F0b: ``$QSHPC_HOME/config.toml`` and ``./qshpc.toml`` (their ``setup``,
``modules`` and ``extra`` lines go into the user's Slurm batch script) and
``$QSHPC_HOME/aer-mpi`` (an MPI Aer build whose Python code runs in every distributed
step) were used whoever owned or could write them: in a team's store (3770) or a shared
project folder a member put their shell lines into another member's job.

The rule is the one the store and a resume's program are held to
(:mod:`qshpc.store.trust`): the file (and, for a folder, everything under it) must be
the user's or root's, and no one else may write it (the group only with
``QSHPC_SHARE_GROUP=1`` and a group of the user's; the user's private group is the
user's). Each folder above it, up to the first that root owns or that has the sticky
bit (others cannot rename what is not theirs in it: ``/tmp``), must be so too, as
another user who could write one could put a folder of theirs in its place. A symbolic
link on the way must be the user's or root's too, in such a folder (review53 L1: another
user's link in ``/tmp`` could be flipped between the check and the read), the file is
read through the descriptor that was checked (:mod:`qshpc.submit.config`), and a path
that cannot be checked to its end is not trusted. A file or a build's entry that the
team's group can write is refused even with ``QSHPC_SHARE_GROUP=1`` (review53 L2: it is
as good as a teammate's); the folders above it may be the team's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path

from qshpc.store.perms import user_name
from qshpc.store.trust import _writers, as_given


def _owner(st: os.stat_result, what: str) -> str | None:
    if st.st_uid in (os.geteuid(), 0):
        return None
    return f"{what} belongs to {user_name(st.st_uid)}"


def _entry_risk(st: os.stat_result, what: str) -> str | None:
    # review53 L2: a file (or a build's entry) a teammate can write is as good as theirs,
    # so the team's group is trusted only in the folders above (QSHPC_SHARE_GROUP=1).
    return _owner(st, what) or _writers(st, what, sticky_ok=False)


def _links_risk(path: Path) -> tuple[str, Path] | None:
    """The first symbolic link on the way to ``path`` (followed as the kernel does) that
    another user (not root) owns, or that sits in a folder another user could write: they
    can point it elsewhere at any moment (review53 L1: a flipping link in ``/tmp`` won
    the race between the check and the read); with that link."""
    here, parts, hops = Path("/"), deque(Path(as_given(path)).parts[1:]), 0
    while parts:
        name = parts.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            here = here.parent
            continue
        step = here / name
        st = os.lstat(step)
        if not stat.S_ISLNK(st.st_mode):
            here = step
            continue
        why = _owner(st, f"{step}, a link on its way,")
        if why is None:
            above = _folders_risk(step)
            why = None if above is None else f"{above[0]}, and it holds {step}, a link on its way"
        if why:
            return why, step
        hops += 1
        if hops > 40:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
        target = Path(os.readlink(step))
        if target.is_absolute():
            here = Path("/")
        parts.extendleft(reversed(target.parts[1:] if target.is_absolute() else target.parts))
    return None


def _folders_risk(path: Path) -> tuple[str, Path] | None:
    """Why another user could put something of theirs at ``path`` through a folder above it
    (and the folder), up to the first root's or sticky one; None when no one can."""
    for folder in path.parents:
        st = folder.stat()
        what = f"the folder above it, {folder}"
        mode = stat.S_IMODE(st.st_mode)
        why = _owner(st, what) or _writers(st, what, sticky_ok=True, team=True)
        if why:
            return why, folder
        if st.st_uid == 0 or mode & stat.S_ISVTX:
            return None
    return None


def _tree_risk(root: Path) -> tuple[str, Path] | None:
    """The first entry under the folder ``root`` that another user owns or can write."""
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            entry = Path(top, name)
            st = os.stat(entry) if os.path.exists(entry) else os.lstat(entry)
            why = _entry_risk(st, str(entry))
            if why:
                return why, entry
    return None


def code_risk(
    path: Path, tree: bool = False, opened: os.stat_result | None = None
) -> tuple[str, str] | None:
    """Why another user could have written ``path``, and the fix; None when only the user
    (or root) could.

    A path that cannot be checked to its end (missing, unreadable, or changed while it is
    checked) is not trusted (review53 L1: an error mid-walk returned None).

    Args:
        path: A file, or a folder (``tree``: everything under it is checked too).
        tree: Check each file and folder under ``path`` (a build's tree).
        opened: The status of the file as opened (``os.fstat`` of the descriptor it is
            read through): it must be the file found at ``path`` now (its device and
            inode), else another one was put in its place between the open and the check.

    Returns:
        ``(why, fix)``: who owns or can write it (or which folder above it, or which link
        on its way), with its mode; and the ``chmod``, or to move it away.
    """
    given = Path(as_given(path))
    try:
        link = _links_risk(given)
        if link:
            return link[0], f"use a path that does not go through {link[1]}"
        real = given.resolve(strict=True)
        st = real.stat()
        if opened is not None and (st.st_dev, st.st_ino) != (opened.st_dev, opened.st_ino):
            return _CHANGED, _AGAIN
        why = _entry_risk(st, "it")
        if why:
            return why, _fix(st, real)
        if tree and stat.S_ISDIR(st.st_mode):
            inner = _tree_risk(real)
            if inner:
                return inner[0], _fix(os.lstat(inner[1]), inner[1], tree=real)
        for p in dict.fromkeys((given, real)):
            above = _folders_risk(p)
            if above:
                folder = above[1]
                return above[0], _fix(folder.stat(), folder, holder=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        return f"it could not be checked ({why}: it, or a folder or link above it, changed)", _AGAIN
    return None


_CHANGED = "another file was put in its place while it was checked"
_AGAIN = "try again; if this goes on, find who changes it"


def _fix(st: os.stat_result, path: Path, holder: bool = False, tree: Path | None = None) -> str:
    mine = st.st_uid == os.geteuid()
    if holder:
        return (
            f"`chmod go-w {path}` (or `chmod +t {path}`), or keep the file in a folder only "
            "you can write"
            if mine
            else "keep the file in a folder only you (or root) can write"
        )
    if tree is not None:
        return (
            f"`chmod -R go-w {tree}`"
            if mine
            else f"remove it and make your own (only its owner or root can: `chown -R` it, or "
            f"move {tree} aside)"
        )
    return f"`chmod go-w {path}`" if mine else f"move it aside (e.g. `mv {path} {path}.theirs`)"


__all__ = ["code_risk"]
