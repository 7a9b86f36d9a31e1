"""File modes of the store, and the checks that it is the user's own.

By default the store is private to its owner: ``$QSHPC_HOME``, ``jobs/`` and
every job directory are created 0700 and files 0600, whatever the umask.
``QSHPC_SHARE_GROUP=1`` in the environment lets the owner's group read jobs
(directories 0750, files 0640), and lets a team share one store on purpose
(see :func:`check_private_dir`).

Before qshpc uses ``$QSHPC_HOME`` or ``jobs/`` it checks them the way ssh
checks ``~/.ssh``: a folder another user owns, or that someone other than the
user can write, is refused. Whoever can write ``jobs/`` can swap a job folder,
and ``qshpc result`` would print their forged result.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from qshpc import settings
from qshpc.errors import UserError

SHARE_GROUP_ENV = settings.SHARE_GROUP.name


class UnsafeStoreError(UserError):
    """A store folder that is not the user's own (another owner, or writable by others)."""


def shared() -> bool:
    """True when ``QSHPC_SHARE_GROUP`` is on (1, true, yes, on)."""
    return settings.SHARE_GROUP.get()


_shared = shared  # older name


def dir_mode() -> int:
    """Mode for store directories: 0700, or 0750 with ``QSHPC_SHARE_GROUP=1``."""
    return 0o750 if shared() else 0o700


def file_mode() -> int:
    """Mode for store files: 0600, or 0640 with ``QSHPC_SHARE_GROUP=1``."""
    return 0o640 if shared() else 0o600


def make_dir(path: Path) -> None:
    """Create ``path`` and any missing parent, each with :func:`dir_mode`, whatever the umask.

    An existing ``path`` gets it too when it is this user's own and has no sticky bit
    (a ``--job-dir`` folder made 0775 by hand is tightened, as before: review27 saw it
    left group-writable, so that a member could swap the stores a resume loads);
    another user's, or a sticky one an admin made 3770, is left as it is (review23 F3:
    it was chmodded too, and in a team's store every other member's map failed with
    'Operation not permitted', or it was made 2750 again). Existing parents are left.
    """
    missing: list[Path] = []
    p = Path(os.path.abspath(path))
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, dir_mode())
        except FileExistsError:
            continue  # made by another process meanwhile: checked by the caller
        _set_dir_mode(d)  # mkdir's mode is masked by the umask
    if not missing:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX:
            _set_dir_mode(Path(path))


def _set_dir_mode(path: Path) -> None:
    """Give ``path`` :func:`dir_mode`; shared, keep its set-group-id bit.

    In a team's store (``chmod 2770 jobs``) a new job folder inherits the bit, so that
    its files take the team's group; a plain chmod to 0750 cleared it, and the files
    took their writer's own group: no other member could read the job (hunt13c).
    """
    mode = dir_mode()
    if shared():
        mode |= os.stat(path).st_mode & stat.S_ISGID
    os.chmod(path, mode)


def set_file_mode(path: Path) -> None:
    """Give ``path`` :func:`file_mode`."""
    os.chmod(path, file_mode())


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write one of qshpc's small files beside a store whole or not at all: a temporary
    file of this writer's own (its pid and a random part; ``O_EXCL|O_NOFOLLOW``, never
    through a link or a FIFO), then a rename over ``path``.

    hunt16: ``status.json`` and the Slurm caches went through one fixed temporary name:
    two writers at once truncated and renamed each other's file (a torn or lost write, a
    ``FileNotFoundError``), and a FIFO left at that name hung ``qshpc status``.
    """
    write_atomic_with(path, lambda fh: fh.write(data), mode)


def write_atomic_with(
    path: Path, fill: Callable[[BinaryIO], object], mode: int | None = None
) -> None:
    """:func:`write_atomic` of what ``fill(file)`` writes (an image drawn straight into it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(tmp, flags, file_mode() if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def private_to_me(path: Path) -> bool:
    """True when this user owns ``path`` and nobody else can write it.

    Pickled data (which runs code when loaded) is loaded only from such files.
    """
    st = path.stat()
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _unsafe_folder(path: Path) -> str | None:
    """None when no other user can replace what ``path`` names: each folder above it is
    this user's or root's, and nobody else can write it, unless its sticky bit (``/tmp``)
    stops others from renaming or removing what is not theirs; else which folder, and why."""
    me = os.geteuid()
    for folder in path.parents:
        st = folder.stat()
        if st.st_uid not in (me, 0):
            return f"{folder}, a folder above it, belongs to {user_name(st.st_uid)}"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            who = "its group" if not st.st_mode & 0o002 else "every user"
            return (
                f"{folder}, a folder above it, can be written by {who} "
                f"(mode {stat.S_IMODE(st.st_mode):04o})"
            )
    return None


def _folders_safe(path: Path) -> bool:
    return _unsafe_folder(path) is None


def private_file(path: Path) -> bool:
    """:func:`private_to_me`, and no other user can swap the file between this check and
    its reading (:func:`_folders_safe`, for the path given and the file it links to).

    Pickled arguments are loaded only from such a file: on 8cc329b a file of the user's
    own in a folder others could write (a 0777 project folder) passed the check, and a
    neighbour who renamed their pickle over it right after got it loaded (run).
    """
    try:
        if not private_to_me(path):
            return False
        absolute = Path(os.path.abspath(path))
        return _folders_safe(absolute) and _folders_safe(absolute.resolve())
    except OSError:
        return False


def why_not_private(path: Path) -> str:
    """Why :func:`private_file` said no for ``path``: which file or folder, and why."""
    whys: list[str] = []
    try:
        st = path.stat()
        if st.st_uid != os.geteuid():
            whys.append(f"it belongs to {user_name(st.st_uid)}")
        elif st.st_mode & 0o022:
            whys.append(f"others can write it (mode {stat.S_IMODE(st.st_mode):04o})")
        absolute = Path(os.path.abspath(path))
        folder = _unsafe_folder(absolute) or _unsafe_folder(absolute.resolve())
    except OSError as exc:
        return f"it cannot be checked ({exc.strerror or exc})"
    if folder:
        whys.append(folder)
    return " and ".join(whys) or "others can write it or a folder above it"


def user_name(uid: int) -> str:
    """``name (uid N)`` for messages that say whose a file is (``uid N`` without an account)."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _my_groups() -> set[int]:
    return {os.getegid(), *os.getgroups()}


#: Set by the command line's commands that only read the store (:func:`reading_only`): a
#: context variable, so that a write in another thread (a notebook's, while a read-only
#: command runs in-process) is never let through by it (review27).
_reading_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "qshpc_reading_only", default=False
)
_warned: set[str] = set()


def reading_only(on: bool = True) -> None:
    """The command running only reads the store (``qshpc list``, ``status``, ``result``,
    ``logs``, ``wait``: :func:`qshpc.cli.common.reads_store`); ``on=False`` when it ends.

    review23 F4: a team's store set up 2770 (what docs/store.md said before session 21)
    refused every command, reads too, until its owner ran ``chmod +t``. The threat is on
    the paths that write or load what a folder holds (a queued Slurm job loads the call
    pickled in its folder); reading one's results is no worse than the team's trust in
    its members, and pickled values are loaded only from files no one else can swap
    (:func:`private_file`). So such a folder is read, with one warning, by these commands.
    """
    _reading_only.set(on)


def check_private_dir(path: Path, what: str) -> None:
    """Refuse a store folder that is not the user's own, as ssh refuses a group-writable ~/.ssh.

    Refused: a folder (or a symlink to one) another user owns, one anybody can
    write, and one the group can write. With ``QSHPC_SHARE_GROUP=1`` (a store
    shared by a team on purpose) a folder another user owns is accepted when
    its group is one of the user's, and the group may write it when its sticky bit
    is set (members cannot rename each other's job folders); a folder anybody can
    write is refused even then. A folder root owns is accepted.

    Args:
        path: The folder (it must exist).
        what: What it is, for the message (``$QSHPC_HOME``, ``the jobs folder``).

    Raises:
        UnsafeStoreError: Saying who owns or can write it, and what to do.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeStoreError(f"cannot use {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStoreError(f"{what} {path} is not a directory: point QSHPC_HOME elsewhere")
    me = os.geteuid()
    share = shared()
    mode = stat.S_IMODE(st.st_mode)
    why = None
    if st.st_uid not in (me, 0) and not (share and st.st_gid in _my_groups()):
        why = f"it is owned by {user_name(st.st_uid)}, not by you ({user_name(me)})"
    elif mode & stat.S_IWOTH:
        why = f"anybody can write it (mode {mode:04o})"
    elif mode & stat.S_IWGRP and not share:
        why = f"your group can write it (mode {mode:04o})"
    elif mode & stat.S_IWGRP and not mode & stat.S_ISVTX:
        # A team's store without the sticky bit: a member can rename another's job folder
        # and put one of theirs in its place, and a queued Slurm job, which runs as its
        # submitter, loads the call pickled there (submitit's): their code ran as you
        # (hunt21b). The cache refuses its shared folder so too. A command that only
        # reads goes on, with one warning (see reading_only).
        fix = (
            f"run `chmod g-w {path}` (a store of your own) or `chmod +t {path}` (a team's, "
            "set up 3770: docs/store.md, 'Sharing a store')"
            if st.st_uid == me
            else f"its owner ({user_name(st.st_uid)}) should run `chmod +t {path}` (a "
            "team's store is set up 3770: docs/store.md, 'Sharing a store')"
        )
        risk = (
            f"your group can write it (mode {mode:04o}) without the sticky bit, so any member "
            "can rename your job folders and put theirs in their place"
        )
        if _reading_only.get():
            _warn_once(
                str(path),
                f"{what} {path}: {risk}; read anyway, but run, submit, rm, gc and cancel "
                f"refuse it: {fix}",
            )
            return
        raise UnsafeStoreError(
            f"refusing to use {what} {path}: {risk} (a queued Slurm job of yours would then "
            f"run their code as you); {fix}"
        )
    if why is None:
        return
    fix = (
        f"run `chmod go-w {path}`"
        if st.st_uid == me
        else "use a folder of your own (e.g. export QSHPC_HOME=~/.qshpc)"
    )
    share_hint = (  # it cannot help a folder anybody can write (review24 F11)
        ""
        if mode & stat.S_IWOTH
        else f". To share a store with your group on purpose, set {SHARE_GROUP_ENV}=1 "
        "(docs/store.md, 'Sharing a store')"
    )
    raise UnsafeStoreError(
        f"refusing to use {what} {path}: {why}. Whoever can write it can swap a job folder, "
        f"and qshpc would show you their forged results; {fix}{share_hint}"
    )


def _warn_once(key: str, text: str) -> None:
    import sys

    if key not in _warned:
        _warned.add(key)
        print(f"qshpc: warning: {text}", file=sys.stderr, flush=True)


def check_own_job_dir(path: Path) -> None:
    """Refuse a job folder that exists and another user owns (a new job's, or one just made).

    Its owner could replace the job's files at any time, and qshpc would show
    their results as the job's: only root could take such a folder (its chmod),
    and another user got 'Operation not permitted'.

    Raises:
        UserError: Naming the owner, and to choose a folder of one's own.
    """
    try:
        uid = path.stat().st_uid
    except OSError:
        return  # missing: made by qshpc; unreadable: refused when written
    me = os.geteuid()
    if uid == me:
        return
    from qshpc.text import shown

    raise UserError(
        f"job directory {shown(path)} belongs to {user_name(uid)}, not to you ({user_name(me)}): "
        "its owner could replace the job's files with results of their own; choose a "
        "folder of your own for the job, or a path that does not exist yet"
    )


def ensure_private_dir(path: Path, what: str) -> Path:
    """Create ``path`` (every missing level with :func:`dir_mode`) and check it is the user's own.

    Returns:
        ``path``.

    Raises:
        UnsafeStoreError: See :func:`check_private_dir`.
    """
    if not path.exists():
        try:
            make_dir(path)
        except OSError as exc:
            raise UnsafeStoreError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    check_private_dir(path, what)
    return path


def _team_folder(st: os.stat_result) -> bool:
    """True for a team's store folder (docs/store.md): the group writes it, sticky, not others."""
    mode = st.st_mode
    return bool(mode & stat.S_IWGRP and mode & stat.S_ISVTX and not mode & stat.S_IWOTH)


def ensure_store_dir(path: Path, what: str) -> Path:
    """:func:`ensure_private_dir` for ``jobs/`` and ``arrays/``: in a team's store
    (``QSHPC_SHARE_GROUP=1``, a ``$QSHPC_HOME`` set up 3770) one made here is made
    like its parent, 3770, so that every member can make their folders in it.

    review23 F3: ``arrays/``, made 2750 by the first member's map, failed every other
    member's map. Its set-group-id bit gives new folders the team's group; the sticky
    bit keeps members from renaming each other's (arrays/ holds an array's pickles).

    Raises:
        UnsafeStoreError: See :func:`check_private_dir`; or it cannot be made.
    """
    if not path.exists() and shared():
        try:
            parent = path.parent.stat()
        except OSError:
            parent = None
        if parent is not None and _team_folder(parent):
            try:
                os.mkdir(path, 0o700)
                with contextlib.suppress(OSError):  # (a parent without set-group-id)
                    os.chown(path, -1, parent.st_gid)
                os.chmod(path, 0o3770)
            except FileExistsError:
                pass  # made by another member meanwhile: checked below
            except OSError as exc:
                raise UnsafeStoreError(
                    f"cannot create {what} {path}: {exc.strerror or exc}"
                ) from None
    return ensure_private_dir(path, what)


def store_write_error(exc: OSError, what: str) -> UserError:
    """A user error for a store folder or file that could not be made: the path and the fix.

    review23 F3: a team member's map raised a raw ``PermissionError`` on ``arrays/``.
    """
    import errno

    name = exc.filename
    where = Path(os.fsdecode(name)) if isinstance(name, (str, bytes, os.PathLike)) else None
    text = f"cannot {what}: {exc.strerror or exc}" + (f" ({where})" if where else "")
    if exc.errno in (errno.EACCES, errno.EPERM) and where is not None:
        folder = where if where.is_dir() else where.parent
        try:
            owner = folder.stat().st_uid
        except OSError:
            owner = os.geteuid()
        if owner == os.geteuid():
            fix = f"make {folder} writable by you (`chmod u+w {folder}`)"
        else:
            fix = (
                f"{folder} belongs to {user_name(owner)}: in a team's store every member "
                f"writes it, so its owner should run `chmod 3770 {folder}` (docs/store.md, "
                "'Sharing a store'); else point QSHPC_HOME at a folder of your own"
            )
        return UserError(f"{text}; {fix}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"{text}; free space (df -h, df -i) and try again")
    return UserError(text)


#: Bytes a job's own files add to its folder's path: the longest is the lock's claim,
#: ``/job.lock.break|<host>|<pid>|<19 digits>`` (flufl.lock), with a host name of up to 64.
_NAME_ROOM = 128


def check_path_room(job_dir: Path) -> None:
    """Refuse a job folder whose path leaves no room for the job's own files (PATH_MAX).

    A ``QSHPC_HOME`` 4,000 bytes deep took ``job.h5``, but its run failed to take the
    job's lock (``job.lock|host|pid|n``: ``File name too long``), saying the folder
    must be writable and have free space, and left the job QUEUED for good.

    Raises:
        UserError: How long the path is, the limit, and to choose a shorter one.
    """
    from qshpc.errors import UserError
    from qshpc.text import shown

    limit = 4096
    for here in job_dir.absolute().parents:  # the nearest folder that exists says its limit
        try:
            limit = os.pathconf(here, "PC_PATH_MAX")
            break
        except (OSError, ValueError):  # missing, or its own path is too long
            continue
    size = len(os.fsencode(job_dir.absolute()))
    if size + _NAME_ROOM >= limit:
        raise UserError(
            f"the job directory's path is {size:,} bytes long (…{shown(str(job_dir)[-60:])}): "
            f"the job's own files in it (its lock: about {_NAME_ROOM} bytes more) would pass "
            f"the system's limit of {limit:,} bytes for a path; choose a shorter QSHPC_HOME "
            "or --job-dir"
        )
