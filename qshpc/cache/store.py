"""The cache folder: one file per key, written to a temporary name and renamed into place.

Why files, not a database
    The cache is shared by every node of a job, by the elements of a Slurm
    array and by a project's users, on NFS or Lustre. SQLite in WAL mode needs
    shared memory between its clients and working POSIX locks: neither holds
    across NFS clients, and its docs warn that the database then corrupts.
    An HDF5 index has one writer at a time and needs file locks too. A file
    per key needs nothing but what every shared file system gives: a lookup
    is one ``open`` of a path computed from the key (the file system's own
    directory index finds it; no scan, no lock, at any number of entries); an
    entry appears whole or not at all, because it is written to a temporary
    name, closed and then renamed, and ``rename`` within a folder
    is atomic on local file systems, NFS and Lustre alike. Two jobs writing the
    same key both write whole files; the last rename wins and either is right.
    A killed writer leaves only a ``.tmp.*`` file, which no reader opens and
    ``gc`` removes. A file torn by a crash below the rename (a node that died
    before its data reached the server) fails its length or checksum test and
    is treated as missing. 256 shard folders keep a folder under ~40,000
    entries up to 10 million entries, which ext4, XFS, Lustre and NFS look up
    by name without reading the folder.

See :mod:`qshpc.cache.folder` for the layout and the permission rules, and
:mod:`qshpc.cache.entry` for the file format.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qshpc.cache import entry as E
from qshpc.cache import folder
from qshpc.cache.keys import is_key

#: An entry used again is marked used (its mtime set) at most this often.
FRESHEN_S = 86400.0
#: A temporary file older than this was left by a writer that died.
TMP_GRACE_S = 3600.0
#: Free space the cache leaves on its file system: at least this many bytes...
MIN_FREE_BYTES = 64 << 20
#: ...or this share of the file system, up to :data:`MAX_RESERVE_BYTES`, if more.
MIN_FREE_SHARE = 0.05
MAX_RESERVE_BYTES = 4 << 30
#: A lazy lookup leaves a body of this many bytes or more undecoded (see CacheDir.get).
LAZY_MIN = 1024
_OTHERS_S = 60.0  # how long the list of other users' folders is kept
_TMP_PREFIX = ".tmp."
_HOST_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class Hit:
    """A result found in the cache.

    Attributes:
        key: The call's key.
        value: The stored result.
        header: What the entry says about itself (function, source job and task, time).
        path: The entry file (a string: this is made on every hit).
        size: The file's size in bytes.
        owner: The uid of the user whose entry it is.
        used: The entry's mtime (when it was stored, or last used, to a day).
        blob: ``encode_blob(value)``, what the job store keeps for a task, when it could
            be had from the entry's bytes (a ``blob`` body as it is, a ``typed`` one
            wrapped as the store keeps the class: :func:`qshpc.cache.body.store_blob`):
            a hit is recorded without encoding it again.
        later: Set when ``value`` was not decoded yet (None): ``later()`` decodes
            :attr:`blob` (see :meth:`CacheDir.get`'s ``lazy``); :meth:`load` does.
    """

    key: str
    value: Any
    header: E.Header
    path: str
    size: int
    owner: int
    used: float
    blob: bytes | None = None
    later: Callable[[], Any] | None = None

    def load(self) -> Any:
        """The stored result, decoded now if it was not yet.

        Raises:
            CacheReadError: A lazy hit's bytes do not decode (see :meth:`CacheDir.get`).
        """
        if self.later is not None:
            self.value = self.later()
            self.later = None
        return self.value


class CacheReadError(Exception):
    """A cache entry that passed its checks at the lookup could not be decoded when read."""


@dataclass(frozen=True)
class EntryStat:
    """One entry file seen by a scan (no read of its contents)."""

    path: Path
    key: str
    owner: int
    size: int
    used: float


_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _read_all(fd: int, size: int) -> bytes:
    """The file's first ``size + 1`` bytes: one ``read`` (more when it returns a short part).

    One byte more than ``size`` tells a reader that the file is longer than it was
    at the ``fstat``: not the entry its lengths describe, so it fails their check
    (an entry file is never appended to; reading on would follow a file a member
    keeps writing). hunt19: one ``read`` returns at most 2 GiB - 4 KiB on Linux,
    so an entry over 2 GiB (a 28-qubit ``Statevector``) read short, failed its
    length check and was removed at every lookup, never a hit.
    """
    data = os.read(fd, size + 1)
    if len(data) >= size or not data:  # the usual case: no second read on a hit's path
        return data
    parts = [data]
    got = len(data)
    while got <= size and (chunk := os.read(fd, size + 1 - got)):
        parts.append(chunk)
        got += len(chunk)
    return data if len(parts) == 1 else b"".join(parts)


#: A header up to this long is read without a look at the file's size first.
_SMALL_HEAD = 1 << 20


def _check_head_len(st: os.stat_result, head_len: int, path: Path) -> None:
    """Refuse a header length that the file cannot hold, or that a sparse giant claims.

    hunt19: the scans (``ls``, ``stats --by-function``, ``rm --function``) read
    ``head_len`` bytes, up to 4 GiB, from whatever file bears a key's name: a
    member's sparse 6 GB file (``truncate -s``) claiming a 4 GiB header made
    ``qshpc cache ls --all-users`` take 12 GB of memory and 40 s (MemoryError under
    a limit). A lookup already passes over such a file
    (:func:`~qshpc.cache.folder.others_entry_readable`); so do the scans now.

    Raises:
        DamagedEntryError: The header cannot be there.
    """
    if E.PREFIX + head_len + E.CHECK > st.st_size:
        raise E.DamagedEntryError(f"{path}: truncated header")
    if head_len > folder.SPARSE_CHECK_BYTES and not folder.others_entry_readable(st):
        raise E.DamagedEntryError(f"{path}: a {head_len}-byte header in a sparse file")


def _check_lengths(fd: int, size: int, path: str) -> None:
    """Refuse a file whose first bytes do not describe an entry of ``size`` bytes, before
    it is read whole.

    hunt21b: a sparse giant under one's own key (``truncate -s 100G``, a damaged disk)
    was read whole: ``qshpc cache gc --verify`` ended in a MemoryError traceback, and a
    lookup's MemoryError left the file in place, so that key was computed again by every
    job and never cached (the write keeps an entry that is there). Its first bytes
    (zeros) say what it is: damaged, removed like a torn entry.

    Raises:
        DamagedEntryError: Not an entry, or its lengths do not fit the file's size.
    """
    head_len, body_len = E.lengths(os.pread(fd, E.PREFIX, 0), path)
    end = E.PREFIX + head_len + body_len + E.CHECK
    if end != size:
        raise E.DamagedEntryError(f"{path}: {size} bytes where its lengths say {end} (torn)")


class CacheWriteError(Exception):
    """An entry could not be written (disk full, permissions); the cache stays as it was.

    Attributes:
        shard: The shard folder (``ab``) when only it is at fault (something that is no
            folder in its place): entries of the other shards can still be written.
    """

    def __init__(self, text: str, shard: str | None = None) -> None:
        super().__init__(text)
        self.shard = shard


def _write_all(fd: int, pieces: list[bytes]) -> None:
    views = [memoryview(p) for p in pieces if len(p)]
    while views:
        n = os.writev(fd, views[:1024])
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


#: :mod:`qshpc.store.encoding_blob`, once an entry was read (a function-level import costs
#: every lookup ~0.7 us).
_BLOBS: Any = None


def _blobs() -> Any:
    global _BLOBS
    from qshpc.store import encoding_blob

    _BLOBS = encoding_blob
    return encoding_blob


#: :mod:`qshpc.cache.body`, once a typed entry was read (an import at each hit: ~0.5 us).
_BODY: Any = None


def _body() -> Any:
    global _BODY
    from qshpc.cache import body

    _BODY = body
    return body


def prepare() -> None:
    """Import what a lookup and a hit's record use (see
    :meth:`qshpc.cache.jobcache.JobCache.prepare`): never qiskit nor Aer."""
    _BLOBS or _blobs()
    import msgpack  # noqa: F401

    _BODY or _body()
    from qshpc.store import qiskit_objects  # noqa: F401


class CacheDir:
    """A cache folder, checked and ready (see :mod:`qshpc.cache.folder`).

    Args:
        root: The cache folder (default :func:`qshpc.cache.folder.default_dir`).
        shared: The group-sharing mode (default: ``QSHPC_SHARE_GROUP``).
        create: Create the folders that are missing.
        fsync: fsync each entry before it is renamed into place. Off by
            default: a killed writer never leaves a torn entry either way (the
            rename comes after the last write), and an entry torn by a machine
            crash fails its checksum and counts as missing; fsync only keeps
            such an entry from being lost, at 1-10 ms a write.

    Raises:
        UserError: The folder is unsafe to use (see :mod:`qshpc.cache.folder`).
    """

    def __init__(
        self,
        root: Path | str | None = None,
        shared: bool | None = None,
        create: bool = True,
        fsync: bool = False,
    ) -> None:
        if isinstance(root, str) and not root.strip():
            from qshpc.errors import UserError

            raise UserError("the cache folder is an empty path: give a folder (cache_dir=...)")
        self.root = folder.expand(root) if root is not None else folder.default_dir()
        self.shared = folder.shared_mode() if shared is None else shared
        self.uid = os.geteuid()
        self.mine = folder.prepare(self.root, self.shared, create)
        self.fsync = fsync
        self._fmode = folder.file_mode(self.shared)
        self._dmode = folder.user_mode(self.shared)
        self._shards: set[str] = set()
        self._others: list[tuple[int, Path]] = []
        self._others_at = -_OTHERS_S
        self._host = _HOST_SAFE.sub("_", socket.gethostname())[:64]
        self.refused = 0  # entries of other users skipped: they held pickled data
        self.damaged = 0  # entries skipped as torn or altered
        self._room_at = -1.0  # when the file system's free space was last read
        self._room_left = 0  # bytes the cache may still write before its reserve

    def __repr__(self) -> str:
        return f"CacheDir({str(self.root)!r}, shared={self.shared})"

    # -- paths -------------------------------------------------------------------
    def path_of(self, key: str, base: Path | None = None) -> Path:
        """The entry file of ``key`` in ``base`` (default: this user's folder)."""
        return (base or self.mine) / key[:2] / key

    def others(self) -> list[tuple[int, Path]]:
        """Other users' folders that may be read (shared mode), as ``(uid, path)``."""
        if not self.shared:
            return []
        now = time.monotonic()
        if now - self._others_at > _OTHERS_S:
            found: list[tuple[int, Path]] = []
            try:
                names = os.listdir(self.root)
            except OSError:
                names = []
            for name in sorted(names):
                if not folder.is_uid_name(name) or int(name) == self.uid:
                    continue
                path = self.root / name
                if folder.check_user_dir(path, int(name)) is None:
                    found.append((int(name), path))
            self._others, self._others_at = found, now
        return self._others

    # -- lookups ------------------------------------------------------------------
    def get(self, key: str, freshen: bool = True, lazy: bool = False) -> Hit | None:
        """The stored result of ``key``, or None.

        This user's entry first, then (shared mode) other users' entries
        without pickled parts. A torn or altered entry counts as missing (this
        user's own is removed, so that the next result can take its place).

        Args:
            key: The call's key (:func:`qshpc.cache.keys.call_key`).
            freshen: Mark this user's entry used (at most once a day), for
                ``gc --older-than``.
            lazy: A hit of this user's whose body is :data:`LAZY_MIN` bytes or more,
                holds no pickle (written so: the header's ``lazy``) and is what the
                job store keeps (:attr:`Hit.blob`) is checked whole (lengths,
                checksum, key) but not decoded: :meth:`Hit.load` decodes it when
                the result is read. Bytes that pass the checksum are the bytes a
                writer wrote; should they still not decode, the read raises
                :class:`CacheReadError` (one line: the entry, removed; run again) and
                no value is made up. Other users' entries are always decoded here
                (their pickle refused).
        """
        hit = self._get_from(key, self.mine, self.uid, freshen, lazy)
        if hit is None and self.shared:
            for uid, base in self.others():
                hit = self._get_from(key, base, uid, False)
                if hit is not None:
                    break
        return hit

    def _get_from(
        self, key: str, base: Path, uid: int, freshen: bool, lazy: bool = False
    ) -> Hit | None:
        # Plain strings, not pathlib: this is rank 0's path for every cached call.
        path = f"{base}/{key[:2]}/{key}"
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:  # missing (the usual miss), a link, unreadable
            return None
        try:
            st = os.fstat(fd)
            if not folder.entry_trusted(st, uid):
                return None
            if uid != self.uid and not folder.others_entry_readable(st):
                self.refused += 1
                return None
            if st.st_size > folder.SPARSE_CHECK_BYTES:  # (a small one: no second read)
                _check_lengths(fd, st.st_size, path)
            data: bytes | None = _read_all(fd, st.st_size)
        except OSError:  # ESTALE: replaced or removed on NFS under us
            return None
        except MemoryError:  # an entry larger than this process can hold: computed again
            return None
        except E.DamagedEntryError:
            data = None
        finally:
            os.close(fd)
        blobs = _BLOBS or _blobs()
        mine = uid == self.uid
        try:
            if data is None:
                raise E.DamagedEntryError(path)
            header, body = E.unpack(data, key, path)
            form = header.form
            if form == "blob":  # the usual case, inline: tiny hits are tens of µs
                blob = bytes(body) if header.plain else None
            else:
                blob = self._record_blob(header, body)
            if lazy and header.lazy and mine and blob is not None and len(body) >= LAZY_MIN:
                return self._lazy_hit(key, header, path, st, blob, freshen)
            value = blobs.decode_blob(body, allow_pickle=mine, source=path)
            if form == "typed" and header.type is not None:
                value = (_BODY or _body()).restore(value, header.type)
        except blobs.PickleRefusedError:
            self.refused += 1
            return None
        except Exception:  # DamagedEntryError, or a body that does not decode
            self.damaged += 1
            if mine and is_key(key):  # never a path made of something else (``../``)
                self._unlink(Path(path))
            return None
        used = st.st_mtime
        if mine and freshen and time.time() - used > FRESHEN_S:
            used = self.touch(Path(path))
        return Hit(key, value, header, path, st.st_size, uid, used, blob)

    @staticmethod
    def _record_blob(header: E.Header, body: memoryview) -> bytes | None:
        """What the job store keeps for this entry's result, from its bytes (None: the
        result must be encoded again: a pickle, an unknown class, an entry that kept a
        numpy.float64 before the store did, session 24)."""
        if not header.plain:
            return None
        if header.form == "blob":
            return bytes(body)
        if header.form == "typed" and header.type is not None:
            return (_BODY or _body()).store_blob(body, header.type)  # type: ignore[no-any-return]
        return None

    def _lazy_hit(
        self, key: str, header: E.Header, path: str, st: os.stat_result, blob: bytes, freshen: bool
    ) -> Hit:
        """A hit of this user's, checked, whose value is decoded from ``blob`` when read."""

        def later() -> Any:
            from qshpc.store.encoding_blob import decode_blob

            try:
                return decode_blob(blob, allow_pickle=False, source=path)
            except Exception as exc:
                self.damaged += 1
                if is_key(key):
                    self._unlink(Path(path))
                raise CacheReadError(
                    f"the cache entry {path} passed its checks but its result cannot be "
                    f"decoded ({exc}); it is removed: run the job again to compute the result"
                ) from None

        used = st.st_mtime
        if freshen and time.time() - used > FRESHEN_S:
            used = self.touch(Path(path))
        return Hit(key, None, header, path, st.st_size, self.uid, used, blob, later)

    def touch(self, path: Path) -> float:
        """Mark an entry of this user used now; returns its new mtime."""
        now = time.time()
        try:
            os.utime(path, (now, now))
        except OSError:
            pass
        return now

    def contains(self, key: str) -> bool:
        """True when this user's folder has a file for ``key`` (not checked)."""
        return os.path.exists(self.path_of(key))

    # -- writes ---------------------------------------------------------------------
    def put(
        self,
        key: str,
        body: bytes,
        function: str,
        job: str | None = None,
        task: str | None = None,
        replace: bool = False,
        form: str = "blob",
        typed: dict[str, Any] | None = None,
        plain: bool = True,
        lazy: bool = False,
    ) -> bool:
        """Store an encoded result under ``key``, atomically.

        Args:
            key: The call's key.
            body: The result, encoded by :func:`qshpc.cache.body.encode` (or blob-encoded
                by :func:`qshpc.store.encoding_blob.encode_blob`: form ``blob``).
            function: The task function's name.
            job: The job whose task computed it.
            task: That task's id.
            replace: Write even when an entry exists (default: keep it).
            form: The body's form (``blob``, ``typed``, ``pickle``).
            typed: For ``typed``: the result's class and attributes.
            plain: ``body`` is ``encode_blob(result)`` as the job store keeps it (``typed``:
                of the plain dict).
            lazy: ``body`` holds no pickle (:attr:`qshpc.cache.body.Encoded.lazy`).

        Returns:
            True when written; False when an entry was there already.

        Raises:
            CacheWriteError: It could not be written (nothing is left behind).
        """
        if not is_key(key):
            raise ValueError(f"not a cache key: {key!r}")
        final = self.path_of(key)
        try:
            there = os.lstat(final)
        except OSError:
            there = None
        if there is not None and stat.S_ISDIR(there.st_mode):
            # A folder in the entry's place costs this entry only, not the job's cache
            # (hunt16: the rename failed, and the job cached nothing more); gc --verify
            # and rm remove it.
            return False
        if not replace:
            # One that a lookup would refuse (a link, group-writable...) is replaced: the
            # rename replaces the name itself (a link, never what it points to).
            if there is not None and folder.entry_trusted(there, self.uid):
                return False
        shard = key[:2]
        if shard not in self._shards:
            try:
                folder._mkdir(self.mine / shard, self._dmode)
            except OSError as exc:
                raise CacheWriteError(
                    f"cannot create {self.mine / shard}: {_why(exc, self.mine)}"
                ) from None
            self._shards.add(shard)
        self._check_room(len(body))
        header = E.Header(
            key, function, job, task, time.time(), self._host, form=form, type=typed,
            plain=plain, lazy=lazy,
        )  # fmt: skip
        tmp = final.with_name(
            f"{_TMP_PREFIX}{key[:16]}.{self._host}.{os.getpid()}.{secrets.token_hex(4)}"
        )
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            if exc.errno == errno.ENOENT and not os.path.isdir(self.mine):
                # hunt19: the whole cache was removed (rm -rf): one warning, not one per
                # shard the job had written ("remove what is there in its place")
                raise CacheWriteError(
                    f"cannot write to the cache {self.mine}: the folder was removed"
                ) from None
            if exc.errno in (errno.ENOTDIR, errno.ENOENT):
                # The shard is no folder (a file in its place), or it was removed meanwhile
                # (`qshpc cache rm`): this entry only; the next write makes the folder again
                self._shards.discard(shard)
                fix = "; remove what is there in its place" if exc.errno == errno.ENOTDIR else ""
                raise CacheWriteError(
                    f"cannot write to the cache folder {self.mine / shard}: {exc.strerror}{fix}",
                    shard=shard,
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM) and os.access(self.mine, os.W_OK | os.X_OK):
                # hunt19: a shard of wrong permissions (a chmod -R slip) turned the cache off
                # for the whole job; it costs that shard's keys only, as a file in its place
                where = self.mine / shard
                raise CacheWriteError(
                    f"cannot write to the cache folder {where}: {exc.strerror} "
                    f"(chmod {self._dmode:o} {where})",
                    shard=shard,
                ) from None
            raise CacheWriteError(
                f"cannot write to the cache {self.mine}: {_why(exc, self.mine)}"
            ) from None
        try:
            try:
                if self._fmode != 0o600:
                    os.fchmod(fd, self._fmode)
                _write_all(fd, E.pack(header, body))
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except OSError as exc:
            self._unlink(tmp)
            raise CacheWriteError(
                f"cannot write to the cache {self.mine}: {_why(exc, self.mine)}"
            ) from None
        return True

    def _check_room(self, size: int) -> None:
        """Refuse a write that would leave the file system less than the cache's reserve.

        The cache is a copy: the job stores on the same file system (by default
        ``$QSHPC_HOME/jobs`` beside ``$QSHPC_HOME/cache``) must not find it full
        because of it. A file system that cannot say (statvfs fails) is written.
        The file system is asked at most once a second while the room it had
        left lasts (statvfs is a round trip to the server on NFS).

        Raises:
            CacheWriteError: Too little room left.
        """
        now = time.monotonic()
        if now - self._room_at < 1.0 and self._room_left >= size:
            self._room_left -= size
            return
        try:
            st = os.statvfs(self.mine)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if st.f_files and not st.f_favail:  # review30 F8: said as "No space left" before
            raise CacheWriteError(
                f"the file system of the cache {self.mine} has no free inodes: "
                f"{_inodes(st, self.mine)} (`qshpc cache gc --max-size ...` frees some, or "
                f"{folder.another(self.root)})"
            )
        reserve = max(
            MIN_FREE_BYTES,
            min(int(st.f_blocks * st.f_frsize * MIN_FREE_SHARE), MAX_RESERVE_BYTES),
        )
        self._room_at, self._room_left = now, free - size - 4096 - reserve
        if self._room_left < 0:
            raise CacheWriteError(
                f"the file system of the cache {self.mine} has {free / 2**20:.1f} MB free, and "
                f"the cache leaves {reserve / 2**20:.1f} MB to the job stores and others "
                f"(`qshpc cache gc --max-size ...` frees some, or {folder.another(self.root)})"
            )

    def put_value(
        self, key: str, value: Any, function: str, job: str | None = None, task: str | None = None
    ) -> bool:
        """:meth:`put` a value (encoded here, so that a hit returns it as it is:
        :mod:`qshpc.cache.body`).

        Raises:
            SerializationError: The value cannot be encoded.
            CacheWriteError: It could not be written.
        """
        from qshpc.cache.body import encode

        enc = encode(value)
        return self.put(
            key, enc.body, function, job, task, form=enc.form, typed=enc.typed, plain=enc.plain,
            lazy=enc.lazy,
        )  # fmt: skip

    def remove(self, path: Path) -> bool:
        """Remove one entry file of this user; False when it was gone already (or could not go)."""
        return self._unlink(path)

    def remove_or_why(self, path: Path) -> str | None:
        """Remove one entry file of this user: None when done (or gone already), else why not."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{exc.strerror or exc} ({path.parent})"
        return None

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            os.unlink(path)
            return True
        except OSError:
            return False

    # -- scans (ls, stats, gc) ------------------------------------------------------
    def folders(self, all_users: bool = False) -> list[tuple[int, Path]]:
        """This user's folder, and with ``all_users`` the others' that may be read."""
        return [(self.uid, self.mine), *(self.others() if all_users else [])]

    def scan(self, all_users: bool = False) -> Iterator[EntryStat]:
        """Every entry file (a stat each, no read), shard by shard.

        Another member's are those a lookup would read: files of theirs that nobody
        else can write. hunt19: a member's shard folder that was a link to one of
        ours listed our entries as theirs (twice in ``ls --all-users``, and counted
        twice by ``stats``), and files a third party planted in their folder were
        listed as theirs.
        """
        for uid, base in self.folders(all_users):
            mine = uid == self.uid
            for e in folder.shard_entries(base):
                if not is_key(e.name):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (mine or folder.entry_trusted(st, uid)):
                    yield EntryStat(Path(e.path), e.name, uid, st.st_size, st.st_mtime)

    def temporaries(self) -> Iterator[tuple[Path, float]]:
        """This user's ``.tmp.*`` files (entries being written, or left by dead writers)."""
        for e in folder.shard_entries(self.mine):
            if e.name.startswith(_TMP_PREFIX):
                try:
                    yield Path(e.path), e.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue

    @staticmethod
    def header(path: Path) -> E.Header:
        """An entry's header (read from its first bytes; the checksum is not tested).

        Raises:
            DamagedEntryError: Not a readable entry.
            OSError: It cannot be opened.
        """
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            prefix = f.read(E.PREFIX)
            head_len, _ = E.lengths(prefix, str(path))
            if head_len > _SMALL_HEAD:  # (a small one is read at once: no fstat for it)
                _check_head_len(os.fstat(fd), head_len, path)
            return E.read_header(prefix + f.read(head_len), str(path))

    @staticmethod
    def verify(path: Path) -> E.Header:
        """Read a whole entry and test its checksum; returns its header.

        Raises:
            DamagedEntryError: Torn or altered.
            OSError: It cannot be read.
        """
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            _check_lengths(fd, os.fstat(fd).st_size, str(path))
            data = f.read()
        return E.unpack(data, path.name, str(path))[0]


def _inodes(st: os.statvfs_result, where: Path) -> str:
    free = st.f_bavail * st.f_frsize
    return f"all {st.f_files:,} inodes used, though {free / 2**20:.1f} MB are free (df -i {where})"


def _why(exc: OSError, where: Path) -> str:
    """``exc`` in words; "No space left on device" when the file system is out of inodes,
    not of bytes (``df -h`` shows room), as "no free inodes" (review30 F8)."""
    if exc.errno == errno.ENOSPC:
        try:
            st = os.statvfs(where)
        except OSError:
            return str(exc)
        if st.f_files and not st.f_favail:
            return f"no free inodes on its file system: {_inodes(st, where)}"
    return str(exc)


__all__ = [
    "FRESHEN_S",
    "LAZY_MIN",
    "TMP_GRACE_S",
    "CacheDir",
    "CacheReadError",
    "CacheWriteError",
    "EntryStat",
    "Hit",
]
