"""Whether a job folder given by its path, and the program a resume runs, are the user's own.

review35 F3: the store's rules (docs/store.md, "The store is yours") covered a job named
by its id, under ``$QSHPC_HOME/jobs``, but a job folder named by its path
(``--job-dir``, ``--resume PATH``, ``qshpc result PATH``) was trusted whoever owned it
or could write the folder holding it: another user swapped in a job folder of their own
(``/proj/scratch``, 2770, or a 0777 folder), ``qshpc result`` printed their values, and
``--resume`` ran their program as the user.

The same rules apply here: a job folder another user owns (root is fine; a team's, with
``QSHPC_SHARE_GROUP=1`` and its group one of the user's, too), one that others can
write, or one held by a folder that another user owns or others can write without the
sticky bit (``/tmp``'s ``1777`` keeps others from renaming what is not theirs) is
refused by what runs, resumes or cancels a job, and read with one warning by the
commands that only read (:func:`qshpc.store.perms.reading_only`). A folder the user's
own private group can write (``umask 002``: the group is named after the user and has no
other member, listed or primary) counts as the user's alone, as Debian's OpenSSH takes
it. The folders above the holding one are not checked, as those above ``$QSHPC_HOME``
are not.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from qshpc.store.perms import (
    SHARE_GROUP_ENV,
    UnsafeStoreError,
    _my_groups,
    _reading_only,
    _warn_once,
    shared,
    user_name,
)


def _group_mine_alone(gid: int) -> bool:
    """True for the user's private group: their primary group, named as they are, that no
    other user has (as a listed member or as their own primary group).

    The group file's member list never names the users whose primary group it is
    (review39 F1: SUSE's ``users``, or a project group given to all its members as
    primary, counted as private). So the passwd entries are scanned too, as Debian's
    OpenSSH does. Where they cannot all be listed (LDAP or sssd with enumeration off
    lists local users only), a group that is not named after the user counts as shared:
    unknown is not alone.
    """
    try:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(gid)
    except (KeyError, ImportError):
        return False
    if gid != me.pw_gid or group.gr_name != me.pw_name:
        return False
    if any(m != me.pw_name for m in group.gr_mem):
        return False
    return _primary_of(gid) <= {me.pw_name}


@functools.cache
def _primary_of(gid: int) -> frozenset[str]:
    """The users whose primary group is ``gid`` (a scan of every passwd entry, once a
    process: it can be slow where they come from a directory service)."""
    import pwd

    return frozenset(u.pw_name for u in pwd.getpwall() if u.pw_gid == gid)


def _group_name(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except (KeyError, ImportError):
        return f"gid {gid}"


def _owner(st: os.stat_result, what: str) -> str | None:
    if st.st_uid in (os.geteuid(), 0) or (shared() and st.st_gid in _my_groups()):
        return None
    return f"{what} belongs to {user_name(st.st_uid)}"


def _writers(st: os.stat_result, what: str, sticky_ok: bool, team: bool = False) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if sticky_ok and mode & stat.S_ISVTX:
        return None  # others cannot rename or remove what is not theirs in it
    if mode & stat.S_IWOTH:
        return f"every user can write {what} (its mode is {mode:04o})"
    if mode & stat.S_IWGRP and not _group_mine_alone(st.st_gid):
        if team and shared() and st.st_gid in _my_groups():
            return None  # a team's, trusted on purpose (QSHPC_SHARE_GROUP=1)
        return f"group {_group_name(st.st_gid)} can write {what} (its mode is {mode:04o})"
    return None


def _holder(path: Path) -> Path:
    """The folder that holds ``path``: its parent, or the nearest one that exists (a new job's
    missing folders are made by qshpc, the user's own)."""
    p = path.parent
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def folder_risk(job_dir: Path, new: bool = False) -> tuple[str, str] | None:
    """Why another user could replace what the job folder ``job_dir`` holds, and the fix.

    Args:
        job_dir: The folder as given (its link, if it is one, and what it names are both
            checked).
        new: A new job's folder (made now, with the store's mode): only what holds it.

    Returns:
        None when only the user (and root, or a team sharing the store on purpose) can;
        else ``(why, fix)``.
    """
    given = Path(os.path.abspath(job_dir))
    try:
        real = given.resolve()
        if not new:
            st = real.stat()
            why = _owner(st, "it") or _writers(st, "it", sticky_ok=False)
            if why:
                fix = (
                    f"`chmod go-w {real}`"
                    if st.st_uid == os.geteuid()
                    else "use a job folder of your own" + _share_hint(st)
                )
                return why, fix
        for folder in dict.fromkeys((_holder(given), _holder(real))):
            st = folder.stat()
            what = f"the folder holding it, {folder}"
            why = _owner(st, what) or _writers(st, what, sticky_ok=True)
            if why:
                fix = (
                    f"`chmod go-w {folder}` (or `chmod +t {folder}`), or move the job folder "
                    "into a folder only you can write"
                    if st.st_uid == os.geteuid()
                    else "move the job folder into a folder only you can write" + _share_hint(st)
                )
                return why, fix
    except OSError:
        return None  # missing or unreadable: what reads it says so
    return None


def _share_hint(st: os.stat_result) -> str:
    """For another user's folder whose group is one of the user's: the team's setting."""
    if st.st_uid in (os.geteuid(), 0) or shared() or st.st_gid not in _my_groups():
        return ""
    return f" (a team's: set {SHARE_GROUP_ENV}=1, docs/store.md, 'Sharing a store')"


def as_given(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute without normalising it (``link/..`` is the kernel's to
    follow: review55 S1); the working directory is asked only for a relative path (a
    removed one raises there: hunt20's removed folder)."""
    p = os.fspath(path)
    return p if os.path.isabs(p) else os.path.join(os.getcwd(), p)


def _planted_link(path: Path) -> tuple[tuple[Path, os.stat_result, Path] | None, bool]:
    """The first link on the way to ``path`` that the kernel's ``protected_symlinks`` would
    not follow: one in a sticky folder every user can write (``/tmp``) that neither this
    user nor the folder's owner owns; with its ``lstat`` and the folder. Links in what a
    link names are walked too; a missing part ends the walk.

    Second, whether no other user can plant such a link later: every part was there, and
    each part in such a folder is this user's or the folder owner's, which the sticky bit
    keeps others from renaming or removing (a missing part, or another user's part there,
    could become their link), and every other folder on the way is this user's or root's
    and no one else can write it (review56 H2: a part of a folder every user could write,
    without the sticky bit, was renamed and replaced by a link later)."""
    me = os.geteuid()
    stable = True
    todo = list(Path(as_given(path)).parts)
    here = Path(todo.pop(0))
    here_st: os.stat_result | None = None  # (of ``here``, once looked at)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            here, here_st = here.parent, None
            continue
        step = here / part
        try:
            st = os.lstat(step)
            folder = here_st if here_st is not None else os.stat(here)
        except OSError:
            return None, False  # (missing, or not to be looked at: what uses it says why)
        sticky_open = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
        theirs = sticky_open and st.st_uid not in (me, folder.st_uid)
        if not sticky_open and (
            folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or folder.st_uid not in (me, 0)
        ):
            # another user can rename a part here later and put their link in its place
            # (review56 H2: a folder every user can write, without the sticky bit)
            stable = False
        if not stat.S_ISLNK(st.st_mode):
            if theirs:
                return None, False  # (another user's folder in /tmp: they can swap it)
            here, here_st = step, st
            continue
        if theirs:
            return (step, st, here), False
        try:
            target = Path(os.readlink(step))
        except OSError:
            return None, False
        hops += 1
        if hops > 40:  # (a loop: ELOOP, said by what uses it)
            return None, False
        if target.is_absolute():
            here, here_st = Path(target.anchor), None
        else:
            here_st = folder
        todo[:0] = [p for p in target.parts if p != target.anchor]
    return None, stable


def check_links(path: Path, what: str) -> bool:
    """Refuse ``path`` when it goes through a link another user put in a sticky folder that
    every user can write (``/tmp``), as the kernel's ``protected_symlinks`` (on by default)
    refuses to follow one.

    review50 F9: ``--job-dir /tmp/x``, where ``/tmp/x`` was another user's link to a folder
    of the user's, made the job there; re-pointed, ``qshpc status /tmp/x`` showed another of
    the user's jobs, and ``--resume /tmp/x`` would have resumed it.

    Returns:
        Whether no other user can put such a link on the way later (each part is there, and
        none in such a folder is another user's): a caller may then skip the check of the
        same path (``jobs.paths.qshpc_home``).

    Raises:
        UnsafeStoreError: Naming the link, its owner and the fix.
    """
    found, stable = _planted_link(path)
    if found is None:
        return stable
    link, st, folder = found
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    raise UnsafeStoreError(
        f"refusing {what} {path}: it goes through {link}, a link (to {target}) that "
        f"{user_name(st.st_uid)} owns in {folder}, a folder every user can write, so they can "
        "point it at another folder at any time (as the kernel's protected_symlinks, where "
        f"on, refuses to follow it): give the folder by its own path ({target}), or have "
        "the link removed (by its owner or root) and make one of your own"
    )


def check_job_folder(job_dir: Path) -> None:
    """Refuse a job folder given by its path that another user could replace
    (:func:`folder_risk`); a command that only reads gets one warning instead. A path
    through another user's link in ``/tmp`` is refused by all (:func:`check_links`).

    Raises:
        UnsafeStoreError: Who owns it or can write it, and the fix.
    """
    check_links(job_dir, "job folder")
    risk = folder_risk(job_dir)
    if risk is None:
        return
    why, fix = risk
    if _reading_only.get():
        _warn_once(
            f"job {job_dir}",
            f"job folder {job_dir}: {why}, so what it shows may be another user's "
            f"(read anyway; run --resume and cancel refuse it): {fix}",
        )
        return
    raise UnsafeStoreError(
        f"refusing to use job folder {job_dir}: {why}, so another user could have put their "
        "job there (their results shown as yours, their program run as you on --resume); "
        f"{fix}"
    )


def check_new_job_folder(job_dir: Path) -> None:
    """Refuse a new job's folder (``--job-dir``) in a folder that another user could
    write or owns (:func:`folder_risk`).

    Raises:
        UnsafeStoreError: Which folder, who owns or can write it, and the fix.
    """
    check_links(job_dir, "--job-dir")
    risk = folder_risk(job_dir, new=True)
    if risk is None:
        return
    why, _ = risk
    raise UnsafeStoreError(
        f"refusing to make job folder {job_dir}: {why}, so another user could put their "
        "job in its place (their results shown as yours, their program run as you on "
        "--resume); choose a --job-dir in a folder only you can write"
    )


def check_program(program: Path, job: str, made: float | None = None) -> None:
    """Refuse to resume job ``job`` whose recorded program file another user owns or
    could replace (the file, or the folder holding it), and that changed since the job was
    made.

    What is refused (review39 F3: a site's or a teammate's program, and one in a team's
    folder, were refused even with ``QSHPC_SHARE_GROUP=1``, a requeued Slurm job too, and
    the advice dropped the job's results): a file another user owns, or that a group not
    the user's alone or every user can write, or held by a folder so; with
    ``QSHPC_SHARE_GROUP=1`` a team's (a group of the user's) is fine, as in the store. The
    rest is fine too when neither the file (nor a link naming it) nor the folder holding
    it changed since the job was made (``made``, its ``created`` time): their status change
    time (ctime), which only root can set back, is older. Then the resume runs what the
    first run ran, from the same hands.

    Raises:
        UnsafeStoreError: Who owns or can write it, and the fix.
    """
    risk = _file_risk(program)
    if risk is None:
        return  # missing: running it says so
    why, stats = risk
    if why is not None and (made is None or max(s.st_ctime for s in stats) >= made):
        since = "" if made is None else (
            ", and it (or the folder holding it) changed after the job was made"
        )  # fmt: skip
        raise UnsafeStoreError(
            f"refusing to resume job {job}: it runs {program}, the program it was made for, "
            f"and {why}{since}, so another user could have put their code there (it would run "
            f"as you); check the file: {_program_fix(stats, job)}"
        )
    _check_own_modules(program, job, made)


def _file_risk(
    path: Path, checked: Path | None = None
) -> tuple[str | None, list[os.stat_result]] | None:
    """Why another user could replace the code file (or package folder) ``path``: it,
    or the folder holding it (or its link's target), is another user's or writable by
    others; with the status of each. None when it is missing. ``checked``: a folder
    checked already (the program's), left out.

    A ``__pycache__`` folder counts as a file's folder does, sticky or not: anyone
    who can add a file there can add a compiled copy that Python runs."""
    try:
        real = path.resolve()
        st = real.stat()
        if stat.S_ISDIR(st.st_mode):  # a package: a folder, as its holder is
            sticky = real.name != "__pycache__"
            why = _owner(st, "it") or _writers(st, "it", sticky_ok=sticky, team=True)
        else:
            why = _owner(st, "it") or _writers(st, "it", sticky_ok=False, team=True)
        stats = [st, path.lstat()]
        for folder in dict.fromkeys((_holder(path), _holder(real))):
            if checked is not None and folder.resolve() == checked:
                continue
            fst = folder.stat()
            stats.append(fst)
            what = f"the folder holding it, {folder}"
            why = why or _owner(fst, what) or _writers(fst, what, sticky_ok=True, team=True)
    except OSError:
        return None
    return why, stats


def _check_own_modules(program: Path, job: str, made: float | None) -> None:
    """:func:`check_program`'s rule for the modules the program imports from its own
    folder (:func:`qshpc.store.ownmodules.own_modules`): a resume runs them as the user
    too (review42 F4: a ``helpers.py`` beside the program that every user could write
    was run on resume without a word). The folder holding the program is checked already."""
    from qshpc.store.ownmodules import own_modules

    for path in own_modules(program):
        # The program's folder is checked already; a link's target's folder is not
        # (review46 M3: a helpers.py linked into a folder every user can write).
        risk = _file_risk(path, checked=program.resolve().parent)
        if risk is None or risk[0] is None:
            continue
        why, stats = risk
        if made is not None and max(s.st_ctime for s in stats) < made:
            continue  # unchanged since the job was made: what the first run ran
        since = "" if made is None else ", and it changed after the job was made"
        raise UnsafeStoreError(
            f"refusing to resume job {job}: its program {program} imports {path} from its own "
            f"folder, and {why}{since}, so another user could have put their code there (it "
            f"would run as you); check the file: {_program_fix(stats, job)}"
        )


def _program_fix(stats: list[os.stat_result], job: str) -> str:
    """How to go on with a job whose program :func:`check_program` refuses."""
    fixes = []
    if not shared() and {s.st_gid for s in stats} & _my_groups():
        fixes.append(f"if its group is your team's, set {SHARE_GROUP_ENV}=1 (docs/store.md)")
    if all(s.st_uid in (os.geteuid(), 0) for s in stats):
        fixes.append("`chmod go-w` it and the folder holding it (root's: ask your admins)")
    new = (
        "start a new job with a copy of your own (this job's results stay readable: "
        f"`qshpc result {job}`)"
    )
    if not fixes:
        return f"it cannot be resumed so; {new}"
    return f"to resume, {' or '.join(fixes)}, then resume again; else {new}"
