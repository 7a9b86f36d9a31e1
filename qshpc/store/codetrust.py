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
another user who could write one could put a folder of theirs in its place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from qshpc.store.perms import user_name
from qshpc.store.trust import _writers


def _owner(st: os.stat_result, what: str) -> str | None:
    if st.st_uid in (os.geteuid(), 0):
        return None
    return f"{what} belongs to {user_name(st.st_uid)}"


def _entry_risk(st: os.stat_result, what: str) -> str | None:
    return _owner(st, what) or _writers(st, what, sticky_ok=False, team=True)


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


def code_risk(path: Path, tree: bool = False) -> tuple[str, str] | None:
    """Why another user could have written ``path``, and the fix; None when only the user
    (or root) could, or it is missing (what reads it says so).

    Args:
        path: A file, or a folder (``tree``: everything under it is checked too).
        tree: Check each file and folder under ``path`` (a build's tree).

    Returns:
        ``(why, fix)``: who owns or can write it (or which folder above it), with its
        mode; and the ``chmod``, or to move it away.
    """
    given = Path(os.path.abspath(path))
    try:
        real = given.resolve()
        st = real.stat()
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
    except OSError:
        return None
    return None


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
