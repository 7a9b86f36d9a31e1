"""What ``qshpc cache ls|stats|rm|gc`` do: scans of the cache folder.

Lookups never scan; these do, shard by shard (a stat per entry; ``ls``,
``rm --function/--job`` and ``stats --by-function`` also read each entry's
header). Only the user's own entries are ever removed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qshpc.cache import entry as E
from qshpc.cache import folder
from qshpc.cache.keys import is_key
from qshpc.cache.store import TMP_GRACE_S, CacheDir, EntryStat
from qshpc.errors import UserError

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_MAX_SIZE = float(1 << 80)  # a yottabyte: any larger size is a typing slip


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes from ``500M``, ``10G``, ``1.5T``, ``2048`` (powers of 1024).

    Raises:
        UserError: Not a size.
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise UserError(f"{option}: {text!r} is not a size; write e.g. 500M, 10G or 1T")
    size = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if size > _MAX_SIZE:  # hunt19: 400 digits made float inf, and int() an OverflowError
        raise UserError(f"{option}: {text!r} is more than any disk holds; write e.g. 10G or 1T")
    return int(size)


def format_size(n: float) -> str:
    """``1.5 GB`` and the like (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def user_name(uid: int) -> str:
    """The login name of ``uid`` (its number when it has none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


@dataclass(frozen=True)
class Row:
    """One entry as ``ls`` and :func:`table` show it."""

    key: str
    function: str
    job: str | None
    task: str | None
    created: float
    used: float
    size: int
    user: str
    host: str
    path: Path

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "key": self.key,
            "function": self.function,
            "job": self.job,
            "task": self.task,
            "created": self.created,
            "used": self.used,
            "size": self.size,
            "user": self.user,
            "host": self.host,
            "path": str(self.path),
        }


def rows(
    cache: CacheDir,
    all_users: bool = False,
    function: str | None = None,
    job: str | None = None,
    limit: int | None = None,
) -> Iterator[Row]:
    """Entries with their headers, shard by shard (unordered); unreadable ones are skipped."""
    n = 0
    for st in cache.scan(all_users):
        if limit is not None and n >= limit:
            return
        h = _header_of(cache, st, function, job)
        if h is None:
            continue
        n += 1
        yield Row(
            st.key, h.function, h.job, h.task, h.created, st.used, st.size,
            user_name(st.owner), h.host, st.path,
        )  # fmt: skip


def _header_of(
    cache: CacheDir, st: EntryStat, function: str | None, job: str | None
) -> E.Header | None:
    """The entry's header when it reads and names ``function`` and ``job`` (None: any), else None
    (an unreadable entry is skipped)."""
    try:
        h = cache.header(st.path)
    except (OSError, E.DamagedEntryError):
        return None
    if function is not None and h.function != function:
        return None
    if job is not None and h.job != job:
        return None
    return h


def table(
    cache: CacheDir | str | os.PathLike[str] | None = None,
    all_users: bool = False,
    function: str | None = None,
) -> Any:
    """What the cache holds: a pandas DataFrame when pandas is installed, else a list of dicts.

    ``cache``: a :class:`CacheDir` or a cache folder (default ``$QSHPC_CACHE_DIR``
    or ``$QSHPC_HOME/cache``). Columns: key, function, job, task, created, used,
    size, user, host, path (times as datetimes in the DataFrame, seconds since the
    epoch otherwise), newest first.

    Raises:
        UserError: ``cache`` is neither, or an unsafe folder.
    """
    if not isinstance(cache, CacheDir):
        if cache is not None and not isinstance(cache, (str, os.PathLike)):
            raise UserError(
                f"table() takes a CacheDir or a cache folder, got {type(cache).__name__}"
            )
        if isinstance(cache, str) and not cache.strip():
            raise UserError("the cache folder is an empty path: give a folder, or none")
        root = folder.expand(cache) if cache is not None else folder.default_dir()
        if not (folder.present(root) and root.is_dir()):
            cache = None  # no cache yet: an empty table, and no folder made for it
        else:
            cache = CacheDir(root, create=False)
    data = sorted(
        (r.as_dict() for r in rows(cache, all_users, function)) if cache is not None else (),
        key=lambda d: d["created"],
        reverse=True,
    )
    try:
        import pandas as pd
    except ImportError:
        return data
    columns = list(Row.__dataclass_fields__)
    df = pd.DataFrame(data, columns=columns)
    for col in ("created", "used"):
        # errors="coerce": a time beyond pandas' range (a member's entry "stored" in the
        # year 10000) is NaT, not OutOfBoundsDatetime for the whole table (hunt19)
        df[col] = pd.to_datetime(df[col], unit="s", errors="coerce")
    return df


@dataclass
class Stats:
    """Totals of a cache folder."""

    root: Path
    shared: bool
    entries: int = 0
    bytes: int = 0
    oldest: float | None = None
    newest: float | None = None
    temporaries: int = 0
    temporary_bytes: int = 0
    users: dict[str, tuple[int, int]] = field(default_factory=dict)
    functions: dict[str, tuple[int, int]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "root": str(self.root),
            "shared": self.shared,
            "entries": self.entries,
            "bytes": self.bytes,
            "oldest_used": self.oldest,
            "newest_used": self.newest,
            "temporaries": self.temporaries,
            "temporary_bytes": self.temporary_bytes,
            "users": {u: {"entries": n, "bytes": b} for u, (n, b) in self.users.items()},
            "functions": None
            if self.functions is None
            else {f: {"entries": n, "bytes": b} for f, (n, b) in self.functions.items()},
        }


def stats(cache: CacheDir, all_users: bool = False, by_function: bool = False) -> Stats:
    """Count the entries (a stat each; with ``by_function`` a header read each too)."""
    s = Stats(cache.root, cache.shared, functions={} if by_function else None)
    for st in cache.scan(all_users):
        s.entries += 1
        s.bytes += st.size
        s.oldest = st.used if s.oldest is None else min(s.oldest, st.used)
        s.newest = st.used if s.newest is None else max(s.newest, st.used)
        name = user_name(st.owner)
        n, b = s.users.get(name, (0, 0))
        s.users[name] = (n + 1, b + st.size)
        if s.functions is not None:
            try:
                fn = cache.header(st.path).function
            except (OSError, E.DamagedEntryError):
                fn = "(unreadable)"
            n, b = s.functions.get(fn, (0, 0))
            s.functions[fn] = (n + 1, b + st.size)
    for path, _ in cache.temporaries():
        s.temporaries += 1
        try:
            s.temporary_bytes += path.stat().st_size
        except OSError:
            pass
    return s


@dataclass
class Removal:
    """What ``rm`` or ``gc`` removed (or, with ``dry_run``, would remove)."""

    removed: int = 0
    freed: int = 0
    kept: int = 0
    kept_bytes: int = 0
    temporaries: int = 0
    damaged: int = 0
    #: Entries that could not be removed (a read-only cache, say): counted as kept too.
    failed: int = 0
    failed_bytes: int = 0
    #: Why the first of them could not be removed.
    error: str | None = None
    paths: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "removed": self.removed,
            "freed_bytes": self.freed,
            "kept": self.kept,
            "kept_bytes": self.kept_bytes,
            "temporaries": self.temporaries,
            "damaged": self.damaged,
            "failed": self.failed,
            "error": self.error,
        }


#: What :func:`_remove_entry` returns for an entry another process removed first.
_GONE = "gone already"


def _remove_entry(cache: CacheDir, path: Path) -> str | None:
    """Remove one entry of this user (a folder in its place too); None when this call
    removed it, :data:`_GONE` when another did first (it is not counted twice: hunt16,
    two ``qshpc cache gc`` at once each said they removed every entry), else why not."""
    import stat

    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return _GONE
    except OSError:
        is_dir = False
    try:
        if not is_dir:
            os.unlink(path)
        else:
            import shutil

            shutil.rmtree(path)
    except FileNotFoundError:
        return _GONE
    except OSError as exc:
        return f"{exc.strerror or exc} ({path if is_dir else path.parent})"
    return None


def _sweep_folder_entries(cache: CacheDir, out: Removal, dry_run: bool) -> None:
    """Remove the folders that stand in an entry's place in this user's folder (hunt16: a
    lookup misses them and a write skips them, so their keys were never cached again)."""
    import stat

    found = [Path(e.path) for e in folder.shard_entries(cache.mine) if is_key(e.name)]
    for path in found:  # (listed first: nothing is removed from a folder while it is read)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        out.damaged += 1
        why = None if dry_run else _remove_entry(cache, path)
        if why is not None and why != _GONE:
            out.failed += 1
            out.error = out.error or why


def _drop(cache: CacheDir, st: EntryStat, out: Removal, dry_run: bool) -> None:
    why = None if dry_run else _remove_entry(cache, st.path)
    if why == _GONE:
        return  # another gc or rm removed it meanwhile: theirs to count
    if why is None:
        out.removed += 1
        out.freed += st.size
        out.paths.append(st.path)
    else:
        out.failed += 1
        out.failed_bytes += st.size
        out.error = out.error or why


def _sweep_temporaries(cache: CacheDir, now: float, out: Removal, dry_run: bool) -> None:
    for path, mtime in cache.temporaries():
        if now - mtime > TMP_GRACE_S and (dry_run or cache.remove(path)):
            out.temporaries += 1


def _sweep_bad_shards(cache: CacheDir, out: Removal, dry_run: bool) -> None:
    """Remove what stands in a shard folder's place in this user's folder (a file, a link).

    The cache's writes skip such a shard (one warning a job); its keys could never
    be cached again until it goes.
    """
    import stat

    for shard in folder.SHARDS:
        path = cache.mine / shard
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        out.damaged += 1
        if not dry_run:
            try:
                os.unlink(path)
            except OSError as exc:
                out.failed += 1
                out.error = out.error or f"cannot remove {path}: {exc.strerror}"


def gc(
    cache: CacheDir,
    older_than: float | None = None,
    max_size: int | None = None,
    verify: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> Removal:
    """Remove this user's entries unused for ``older_than`` seconds, then the least
    recently used until the rest fit in ``max_size`` bytes.

    Always removes temporary files older than an hour (left by killed writers);
    with ``verify``, reads every entry and removes the torn or altered ones, and what
    stands in a shard folder's place. "Used" is the entry's mtime: set when it is stored and, at most once a day,
    when a lookup returns it.
    """
    now = time.time() if now is None else now
    out = Removal()
    _sweep_temporaries(cache, now, out, dry_run)
    if verify:
        _sweep_bad_shards(cache, out, dry_run)
        _sweep_folder_entries(cache, out, dry_run)
    kept: list[EntryStat] = []
    for st in cache.scan():
        if verify:
            try:
                if not folder.entry_trusted(os.lstat(st.path), cache.uid):  # a lookup refuses it
                    raise E.DamagedEntryError(f"{st.path}: writable by others")
                cache.verify(st.path)
            except (OSError, E.DamagedEntryError):
                out.damaged += 1
                _drop(cache, st, out, dry_run)
                continue
        if older_than is not None and now - st.used >= older_than:
            _drop(cache, st, out, dry_run)
        else:
            kept.append(st)
    if max_size is not None:
        total = sum(st.size for st in kept)
        kept.sort(key=lambda st: st.used)
        i = 0
        while total > max_size and i < len(kept):
            _drop(cache, kept[i], out, dry_run)
            total -= kept[i].size
            i += 1
        kept = kept[i:]
    out.kept = len(kept) + out.failed
    out.kept_bytes = sum(st.size for st in kept) + out.failed_bytes
    return out


def remove(
    cache: CacheDir,
    keys: Iterable[str] = (),
    function: str | None = None,
    job: str | None = None,
    everything: bool = False,
    dry_run: bool = False,
) -> Removal:
    """Remove this user's entries: by key (or a unique prefix of 4+ hex digits), by
    function name, by source job, or all of them.

    Raises:
        UserError: A key prefix that is malformed, matches nothing, or matches several;
            ``everything`` with keys, a function or a job (which of them was meant?).
    """
    keys = list(keys)
    if everything and (keys or function is not None or job is not None):
        given = "KEY" if keys else "--function" if function is not None else "--job"
        raise UserError(
            f"--all removes every entry of yours, whatever {given} says: give --all alone, "
            f"or leave it out to remove only the entries {given} names"
        )
    out = Removal()
    targets: list[EntryStat] = []
    for k in keys:
        targets.append(_by_prefix(cache, k))
    if everything or function is not None or job is not None:
        for st in cache.scan():
            if everything or _header_of(cache, st, function, job) is not None:
                targets.append(st)
    seen: set[Path] = set()
    for st in targets:
        if st.path not in seen:
            seen.add(st.path)
            _drop(cache, st, out, dry_run)
    out.kept, out.kept_bytes = out.failed, out.failed_bytes
    return out


def _by_prefix(cache: CacheDir, prefix: str) -> EntryStat:
    p = prefix.strip().lower()
    if len(p) < 4 or any(c not in "0123456789abcdef" for c in p):
        raise UserError(f"{prefix!r} is not a cache key: give 4 or more of its hex digits")
    shard = cache.mine / p[:2]
    try:
        names = [n for n in os.listdir(shard) if n.startswith(p) and len(n) == 64]
    except OSError:
        names = []
    if not names:
        raise UserError(f"no entry of yours has a key starting {p} (see `qshpc cache ls`)")
    if len(names) > 1:
        raise UserError(f"{len(names)} entries have keys starting {p}: give more digits")
    path = shard / names[0]
    try:
        # lstat: a link in an entry's place is itself removed (hunt19: stat followed a
        # dangling one, and `qshpc cache rm KEY` printed a FileNotFoundError traceback)
        st = os.lstat(path)
    except OSError:  # removed meanwhile (another rm or gc)
        raise UserError(
            f"no entry of yours has a key starting {p} (see `qshpc cache ls`)"
        ) from None
    return EntryStat(path, names[0], cache.uid, st.st_size, st.st_mtime)


__all__ = [
    "Removal",
    "Row",
    "Stats",
    "format_size",
    "gc",
    "parse_size",
    "remove",
    "rows",
    "stats",
    "table",
    "user_name",
]
