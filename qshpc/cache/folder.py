"""Where the cache lives, and who may write what in it.

Layout::

    <cache>/                   $QSHPC_CACHE_DIR, --cache-dir, or $QSHPC_HOME/cache
      CACHEDIR.TAG             tells backup tools to skip the folder
      <uid>/                   one folder per user: only its owner writes it
        <ab>/                  256 shards: the key's first two hex digits
          <key>                one entry file per key (qshpc.cache.entry)
          .tmp.<...>           an entry being written (or left by a killed writer)

Permissions follow the job store's: private by default, the group's when
``QSHPC_SHARE_GROUP=1`` (the documented group-sharing mode).

* Private: ``<cache>`` and ``<uid>`` are created 0700 (whatever the umask),
  entries 0600. A ``<cache>`` that another user owns, or that the group or
  others can write, is refused.
* Shared: ``<cache>`` is created 3770 (group members add their own ``<uid>``
  folder; the sticky bit stops them removing or renaming each other's),
  ``<uid>`` 2750, entries 0640. Lookups read the user's own entries first,
  then the other members' (never their pickled parts). A ``<cache>`` that
  anyone outside the group can write, or that the group can write without
  the sticky bit, is refused.

A ``<uid>`` folder is used only when the user it is named after owns it and
nobody else can write it; an entry only when that user owns it and nobody
else can write it. Pickled data is loaded from the user's own entries only.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from qshpc.errors import UserError
from qshpc.store.trust import check_links

CACHE_DIR_ENV = "QSHPC_CACHE_DIR"
SHARE_GROUP_ENV = "QSHPC_SHARE_GROUP"
TAG_FILE = "CACHEDIR.TAG"
TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by qshpc (its task result cache).\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
SHARDS = tuple(f"{i:02x}" for i in range(256))


class CacheUnusable(UserError):
    """A cache folder a job runs without (rank 0 warns once, naming the folder and why),
    which the ``qshpc cache`` commands refuse: :class:`FolderTaken`, :class:`CannotMake`."""


class FolderTaken(CacheUnusable):
    """This user's ``<uid>`` folder is another user's (a member made it, or a link, first).

    review30 F7: in a shared cache any member may create a folder (3770), so one
    member's folder, or link, under another's uid refused that user's every
    ``--cache`` job (exit 2), though a cache problem never fails a job. A job now
    runs without the cache (one warning naming the folder); ``qshpc cache`` commands
    still refuse, and say what the user can do.
    """


class CannotMake(CacheUnusable):
    """The cache folder, or this user's ``<uid>`` folder in it, cannot be made: a read-only
    file system, no space, no free inodes, a quota.

    review50 F1: a new member's first ``--cache`` job in a full (or read-only) shared cache
    failed (exit 2) before anything ran, though a full or read-only cache never fails a
    job (docs/cache.md). An unsafe folder is still refused: that one is the user's to fix.
    """


#: Why a folder cannot be made that is the file system's state, not the user's error.
_UNMAKEABLE = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def _cannot_make(exc: OSError, text: str, root: Path) -> UserError:
    """The error for a folder of the cache that could not be made (``text`` says which)."""
    if exc.errno not in _UNMAKEABLE:
        return UserError(text)
    from qshpc.store.space import free_text

    if exc.errno == errno.EROFS:
        return CannotMake(f"{text} (--no-cache runs without it)")
    room = free_text(root)
    if "(df -i)" not in room:  # (it names the inodes when they are all used)
        room += ": free space (df -h) or inodes (df -i)" if room else "free space (df -h)"
    return CannotMake(f"{text} ({room}; --no-cache runs without it)")


def shard_entries(base: Path) -> Iterator[os.DirEntry[str]]:
    """What the shard folders of one user's folder ``base`` hold, shard by shard (one
    ``os.scandir`` each, no stat); a shard that cannot be listed (none yet, not a folder,
    unreadable) is passed over. The scans of ``ls``, ``stats`` and ``gc`` go through it."""
    for shard in SHARDS:
        try:
            it = os.scandir(base / shard)
        except OSError:
            continue
        with it:
            yield from it


def shared_mode() -> bool:
    """True in the group-sharing mode (``QSHPC_SHARE_GROUP=1``)."""
    from qshpc import settings

    return settings.SHARE_GROUP.get()


def default_dir() -> Path:
    """``$QSHPC_CACHE_DIR``, else ``$QSHPC_HOME/cache`` (``~/.qshpc/cache``).

    Raises:
        UserError: ``$QSHPC_CACHE_DIR`` names the home of a user that does not exist.
    """
    from qshpc import settings

    path = settings.CACHE_DIR.get()
    if path is not None:
        try:
            return expand(path)
        except UserError as exc:  # (mend24: say where the folder was given)
            raise UserError(f"${CACHE_DIR_ENV}: {exc}") from None
    from qshpc.jobs.paths import qshpc_home

    return qshpc_home() / "cache"


def expand(path: str | os.PathLike[str]) -> Path:
    """A cache folder as given (``--cache-dir``, ``cache_dir=``), ``~`` expanded.

    hunt19: ``~nosuchuser/cache`` (a quoted ``~``, a mistyped login) raised
    RuntimeError, and a ``cache_dir`` of the wrong kind TypeError: tracebacks
    from ``qshpc cache``, ``qshpc run --cache`` and ``qshpc.cache.lookup``.

    Raises:
        UserError: Not a path, or ``~user`` of no such user.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(
            f"the cache folder must be a path (a str or a Path), got {type(path).__name__} "
            f"{path!r:.40}"
        )
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise UserError(
            f"the cache folder {os.fspath(path)!r} starts with the home folder of a user that "
            "does not exist here: write the folder out in full (or ~/... for your own)"
        ) from None


def another(root: Path) -> str:
    """How to choose another cache folder, in the words of where ``root`` came from.

    mend24: a folder set by ``$QSHPC_CACHE_DIR`` was answered "choose another
    --cache-dir", an option the user never gave. ``root`` is taken for the
    variable's when it is the folder the variable names (as given, or made absolute).
    """
    text = os.environ.get(CACHE_DIR_ENV, "").strip()
    if text:
        try:
            same = os.path.abspath(expand(text)) == os.path.abspath(root)
        except UserError:  # (~user of no such user: never the folder in use)
            same = False
        if same:
            return f"change ${CACHE_DIR_ENV}={text} to another folder"
    return "choose another --cache-dir"


def present(root: Path) -> bool:
    """Whether the cache folder ``root`` exists (anything by that name; False when missing).

    hunt19: ``Path.exists`` raised for a name too long (ENAMETOOLONG), a parent one
    may not enter (EACCES) or an I/O error: ``qshpc cache`` printed a traceback.

    Raises:
        UserError: It cannot be looked at.
    """
    try:
        os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise UserError(
            f"cannot use the cache folder {root}: {exc.strerror or exc}; {another(root)}"
        ) from None
    return True


def root_mode(shared: bool) -> int:
    """Mode of ``<cache>``."""
    return 0o3770 if shared else 0o700


def user_mode(shared: bool) -> int:
    """Mode of ``<cache>/<uid>`` and its shards."""
    return 0o2750 if shared else 0o700


def file_mode(shared: bool) -> int:
    """Mode of entry files."""
    return 0o640 if shared else 0o600


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _mkdir(path: Path, mode: int) -> None:
    """Create one folder with exactly ``mode`` (the umask is not applied); fine if it exists."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chmod(path, mode)


def check_root(root: Path, shared: bool) -> None:
    """Refuse a cache folder that is not safe to use in this mode.

    Raises:
        UserError: It is not a folder, or someone it should not trust can write it, or
            its path goes through another user's link in ``/tmp`` (review54: as
            ``--job-dir``, fixO).
    """
    check_links(root, "the cache folder")
    try:
        st = os.stat(root)
    except OSError as exc:
        raise UserError(f"cannot use the cache folder {root}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"the cache folder {root} is not a folder: {another(root)}")
    me = os.geteuid()
    mode = st.st_mode
    if mode & stat.S_IWOTH:
        raise UserError(
            f"the cache folder {root} can be written by every user: qshpc will not read "
            f"results from it (chmod o-w {root}, or {another(root)})"
        )
    if shared:
        if mode & stat.S_IWGRP and not mode & stat.S_ISVTX:
            raise UserError(
                f"the shared cache folder {root} is group-writable without the sticky bit, so "
                f"group members could replace each other's folders: chmod +t {root}"
            )
        return
    if st.st_uid != me:
        raise UserError(
            f"the cache folder {root} belongs to {_owner(st.st_uid)}: to share a cache with "
            f"your group set {SHARE_GROUP_ENV}=1, or use a folder of your own: {another(root)}"
        )
    if mode & stat.S_IWGRP:
        raise UserError(
            f"the cache folder {root} can be written by its group: set {SHARE_GROUP_ENV}=1 to "
            f"use it as a shared cache, or make it private (chmod 700 {root})"
        )


def check_user_dir(path: Path, uid: int) -> str | None:
    """Why ``<cache>/<uid>`` must not be trusted, or None when it is ``uid``'s alone."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if st.st_uid != uid:  # first: a member's link is theirs (review30 F7)
        what = (
            ""
            if stat.S_ISDIR(st.st_mode)
            else " (a link)"
            if stat.S_ISLNK(st.st_mode)
            else " (a file)"
        )
        return f"{path}{what} belongs to {_owner(st.st_uid)}, not {_owner(uid)}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} can be written by users other than {_owner(uid)}"
    return None


def prepare(root: Path, shared: bool, create: bool = True) -> Path:
    """Make sure ``root`` and this user's folder in it exist and are safe; return that folder.

    Args:
        root: The cache folder.
        shared: The group-sharing mode.
        create: Create what is missing (False: only check).

    Raises:
        UserError: A folder is unsafe (see the module doc) or cannot be created.
    """
    me = os.geteuid()
    try:
        exists = root.exists()
    except OSError as exc:  # a parent we may not enter
        raise UserError(f"cannot use the cache folder {root}: {exc.strerror}") from None
    if create:
        _refuse_job_folders(root)
    made = False
    if not exists and create:
        try:
            missing = [p for p in [root, *root.parents] if not p.exists()]
            for p in reversed(missing[1:]):
                # Parents qshpc creates: private, or only traversable by the group.
                _mkdir(p, 0o750 if shared else 0o700)
            _mkdir(root, root_mode(shared))
            made = True
        except OSError as exc:
            text = f"cannot create the cache folder {root}: {exc.strerror}"
            raise _cannot_make(exc, f"{text}; {another(root)}", root) from None
    check_root(root, shared)
    tag_st = _check_enter(root, shared)
    tag = root / TAG_FILE
    if create and tag_st is not None and _empty_tag_of(tag_st, me):
        _drop_empty_tag(tag)  # written again below
        tag_st = None
    # Only in a folder of qshpc's own making: the tag makes backup tools skip the
    # whole folder, and a --cache-dir given by mistake (~, a project folder) holds more.
    if create and tag_st is None and (made or _empty_but_ours(root, me)):
        _write_tag(tag, shared)
    mine = root / str(me)
    if create and not mine.exists():
        try:
            _mkdir(mine, user_mode(shared))
        except OSError as exc:
            text = f"cannot create your folder in the cache {root}: {exc.strerror}"
            if shared and exc.errno not in _UNMAKEABLE:
                text += f" (a shared cache needs a group-writable folder: chmod 3770 {root})"
            raise _cannot_make(exc, text, root) from None
    # lexists: a dangling link a member planted is refused too, not passed over
    why = check_user_dir(mine, me) if os.path.lexists(mine) else None
    if why is not None:
        text = f"cannot use the cache: {why}; {_fix_of_user_dir(mine, me)}"
        raise FolderTaken(text) if _lowner(mine) not in (None, me) else UserError(text)
    return mine


def _lowner(path: Path) -> int | None:
    """The owner of ``path`` itself (a link's own), None when it cannot be looked at."""
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


def _fix_of_user_dir(mine: Path, me: int) -> str:
    """What to do about one's own ``<uid>`` folder that :func:`check_user_dir` refuses.

    hunt21b: a group member who made a folder under a new member's uid in a shared
    cache (the sticky bit lets anyone create, but only its owner remove) got that
    member's every ``--cache`` run refused with "remove it", which they cannot do.
    """
    owner = _lowner(mine)
    if owner in (None, me):
        return f"remove it or {another(mine.parent)}"
    if _lowner(mine.parent) == me:  # review30 F7: "ask them to" told the owner of the cache
        # The sticky bit lets the folder's owner rename what others made in it: a rename
        # in the same folder needs no right on the thing moved, which rm -r would.
        aside = mine.with_name(f"{mine.name}.{_login(owner)}")
        return (
            f"you own the cache folder {mine.parent}, so you can move it aside (mv {mine} "
            f"{aside}; {_owner(owner)} can then remove it) and the next job makes your own"
        )
    return (
        f"only {_owner(owner)} (or the owner of {mine.parent}) can remove it: ask them to, "
        f"or {another(mine.parent)}"
    )


def _login(uid: int) -> str:
    """A user's login (``uid-N`` when there is none), for a file name."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid-{uid}"


def _check_enter(root: Path, shared: bool) -> os.stat_result | None:
    """Refuse a cache folder this user cannot enter, with the fix; the stat of its
    ``CACHEDIR.TAG`` (None: there is none).

    hunt19: in the group mode, a folder another member made private (0700) passed
    :func:`check_root` (it refuses only what others could write), and the look for
    one's own folder in it raised PermissionError: a traceback from ``qshpc cache ls``
    and ``qshpc run --cache``.

    Raises:
        UserError: ``root`` cannot be entered.
    """
    try:
        return os.stat(root / TAG_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        fix = (
            f"its owner can open it to the group: chmod 3770 {root}"
            if shared
            else f"chmod 700 {root}, or {another(root)}"
        )
        raise UserError(
            f"cannot use the cache folder {root}: {exc.strerror or exc}; {fix}"
        ) from None


def _empty_tag_of(st: os.stat_result, uid: int) -> bool:
    """True for an empty ``CACHEDIR.TAG`` of ``uid``'s: one a writer killed (or a full disk:
    qshpc before hunt19) left before its text, which backup tools do not honour."""
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_uid == uid


def _drop_empty_tag(tag: Path) -> None:
    try:
        os.unlink(tag)
    except OSError:
        pass


def _write_tag(tag: Path, shared: bool) -> None:
    """Write ``CACHEDIR.TAG`` whole, or leave none (a later run writes it).

    hunt19: on a full disk the file was created and its text not written: an empty
    tag, which backup tools do not take for one (it must start with the signature),
    and which was never written again.
    """
    try:
        fd = os.open(tag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode(shared))
    except OSError:
        return  # a folder another member created: the tag is theirs to write
    try:
        with os.fdopen(fd, "w") as f:
            f.write(TAG_TEXT)
    except OSError:
        try:
            os.unlink(tag)
        except OSError:
            pass


def _empty_but_ours(root: Path, uid: int) -> bool:
    """True when ``root`` holds nothing but user folders of the cache (``<uid>``)."""
    try:
        names = os.listdir(root)
    except OSError:
        return False
    return all(is_uid_name(n) for n in names) and (not names or str(uid) in names)


def is_uid_name(name: str) -> bool:
    """True for the name of a user's folder: a uid written in ASCII digits, as qshpc writes it.

    hunt19: ``str.isdigit`` is also true of ``²`` and ``①``, which ``int`` refuses: a
    member's folder so named in a shared cache made every lookup that missed one's own
    entries raise ValueError (the job FAILED) and ``qshpc cache ls --all-users`` crash.
    """
    return name.isascii() and name.isdigit() and name == str(int(name))


def _refuse_job_folders(root: Path) -> None:
    """Refuse a cache folder that is qshpc's jobs folder, inside it, or a job directory.

    Raises:
        UserError: Entries and a ``CACHEDIR.TAG`` there would mix with jobs (and the
            tag would make backup tools skip them).
    """
    from qshpc import settings

    try:
        where = root.expanduser().resolve()
        jobs = ((settings.HOME.get() or Path.home() / ".qshpc") / "jobs").resolve()
        is_job = (where / "job.h5").exists()
    except (OSError, RuntimeError):
        return
    if where == jobs or jobs in where.parents or is_job:
        what = (
            "a job directory"
            if is_job
            else "qshpc's jobs folder"
            if where == jobs
            else f"inside qshpc's jobs folder {jobs}"
        )
        raise UserError(
            f"the cache folder {root} is {what}: {another(root)}, a folder of its own "
            "(default: $QSHPC_HOME/cache)"
        )


def entry_trusted(st: os.stat_result, uid: int) -> bool:
    """True when an entry file is a regular file of ``uid`` that nobody else can write."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_uid == uid
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


#: Other members' entries over this size are read only when their blocks are on disk.
SPARSE_CHECK_BYTES = 64 << 20


def others_entry_readable(st: os.stat_result) -> bool:
    """Whether another member's entry is worth reading: not a sparse giant.

    A group member (or a damaged disk) can plant a file of many GB that holds
    almost no blocks (``truncate -s 100G``); reading it whole to check it would
    exhaust the job's memory. Over :data:`SPARSE_CHECK_BYTES`, another user's
    entry is read only when at least half of its size is allocated. Such a file
    counts as a miss (on a compressing file system, a large entry of another
    user may be skipped so too; one's own entries are never checked this way).
    """
    if st.st_size <= SPARSE_CHECK_BYTES:
        return True
    return st.st_blocks * 512 >= st.st_size // 2


__all__ = [
    "CACHE_DIR_ENV",
    "SHARDS",
    "FolderTaken",
    "another",
    "check_root",
    "check_user_dir",
    "default_dir",
    "entry_trusted",
    "expand",
    "file_mode",
    "is_uid_name",
    "others_entry_readable",
    "prepare",
    "present",
    "root_mode",
    "shard_entries",
    "shared_mode",
    "user_mode",
]
