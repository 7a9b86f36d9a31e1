"""Creating job files, and the standalone arguments files."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.errors import (
    DamagedStoreError,
    SchemaVersionError,
    SerializationError,
    StoreError,
    UserError,
)
from qshpc.store import layout as L
from qshpc.store import perms, seal, trust
from qshpc.store.batch import Batch, Ends
from qshpc.store.encoding_blob import encode_blob
from qshpc.store.encoding_h5 import read_native, write_native
from qshpc.store.log import append_frame, write_commit
from qshpc.store.nesting import _NEST_HINT, check_nesting
from qshpc.store.records import JOB_FILE, STATES

ARGUMENTS_FILE_TYPE = "qshpc-arguments"


def _write_error(path: Path, exc: BaseException) -> StoreError:
    from qshpc.store.space import disk_full, full_error

    if disk_full(exc):  # a new file (a job's, or arguments): there is nothing to resume
        return full_error(
            path,
            "creating it",
            "nothing was written: free space (df -h) or inodes (df -i), then try again",
        )
    return StoreError(
        f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}. Check that the folder "
        "is writable and "
        f"that its file system has free space (df -h {path.parent})"
    )


def _drop(tmp: Path) -> None:
    """Remove a temporary file after a failed write, if it can be: on a read-only file system
    even a missing one's unlink fails (EROFS), and that error hid the write's own as an
    OSError traceback (hunt23b: ``save_arguments`` into a read-only folder)."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _atomic_h5(path: Path, fill: Any, exclusive: bool = False) -> None:
    """Write an HDF5 file through ``path.tmp`` and an atomic rename.

    The file is built in memory (HDF5's core driver) and written with plain
    writes, so a full disk is a clean ENOSPC here, never a failed write inside
    HDF5 (which can crash the process at exit). Then it is sealed.

    ``exclusive``: never replace a ``path`` that exists (a hard link instead of
    the rename, through a temporary file of this process's own).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (made meanwhile by another).
    """
    tmp = path.with_name(path.name + ".tmp")
    if exclusive:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        with h5py.File(
            path.with_name(f".{path.name}.mem"), "w", driver="core", backing_store=False,
            libver="latest", userblock_size=seal.USERBLOCK,
        ) as f:  # fmt: skip
            fill(f)
            f.flush()
            image = f.id.get_file_image()
        fd = seal.create_new(tmp, perms.file_mode())  # never through a FIFO or link there
        try:
            perms.set_file_mode(tmp)
            for part in (seal.MARK.ljust(seal.USERBLOCK, b"\0"), image):
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        seal.seal(tmp)
        L.fsync_path(tmp)
        if exclusive:
            _publish(tmp, path)
        else:
            os.replace(tmp, path)
        L.fsync_path(path.parent)
    except FileExistsError:
        _drop(tmp)
        raise
    except OSError as exc:
        _drop(tmp)
        raise _write_error(path, exc) from exc
    except BaseException as exc:
        _drop(tmp)
        from qshpc.store.space import disk_full

        if disk_full(exc) and not isinstance(exc, StoreError):
            raise _write_error(path, exc) from exc
        raise


def _write_arguments(f: h5py.File, arguments: dict[str, Any]) -> None:
    if not isinstance(arguments, dict):
        raise SerializationError(f"arguments must be a dict, not {type(arguments).__name__}")
    check_nesting(arguments, "the arguments")
    write_native(f, L.ARGUMENTS, arguments)
    f[L.ARGUMENTS].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION


def _publish(tmp: Path, path: Path) -> None:
    """Put ``tmp`` in place as ``path`` unless ``path`` exists (FileExistsError); atomic where
    the file system has hard links."""
    import errno

    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        if exc.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.ENOSYS,
        ):
            raise
        if path.exists():  # no hard links on this file system: the check, then the rename
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    tmp.unlink(missing_ok=True)


#: What a job meta key is, for :func:`_check_utf8_meta`'s message.
_META_WORDS = {
    "title": "the job's title (--title)",
    "description": "the program's description",
}


def _check_utf8_meta(meta: dict[str, Any]) -> None:
    """Refuse a meta string UTF-8 cannot hold (a lone surrogate: ``--title`` or a program
    argument made of a non-UTF-8 file name, ``-- data/*.csv``): h5py raised
    UnicodeEncodeError with a traceback, exit 1 (review55 E6).

    Raises:
        UserError: Naming the field, the item and its bytes, and the fix.
    """

    def bad(text: str) -> bool:
        if text.isascii():
            return False
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    for key, value in meta.items():
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, str) and bad(item):
                what = _META_WORDS.get(key, f"job field {key!r}")
                if key == "argv":
                    what = f"the program's argument sys.argv[{index}]"
                elif index is not None:
                    what = f"{what} (item {index})"
                raw = _raw(item)  # (review56 M3: "\\ud800" raised here)
                raise UserError(
                    f"{what}, {raw!r}, is not valid UTF-8: the job store records it as UTF-8 "
                    "text; give it in UTF-8 (rename a file whose name it is)"
                )


def create_job(
    job_dir: str | os.PathLike[str], meta: dict[str, Any], arguments: dict[str, Any] | None
) -> None:
    """Create ``job_dir`` (mode 0700) and its ``job.h5`` in state QUEUED.

    Args:
        job_dir: The job directory (created with its parents).
        meta: id, title, entrypoint, working_dir, created, seed, qshpc_version and
            any other JSON-able keys (Slurm info, ...).
        arguments: The program's arguments (stored natively), or None.

    Raises:
        StoreError: When the directory or file cannot be written.
        SerializationError: When ``meta`` or ``arguments`` cannot be stored.
        UserError: ``job_dir`` holds a ``job.h5`` already (it is never replaced).
    """
    job_dir = Path(job_dir)
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"job meta must be JSON-able: {exc}") from exc
    _check_utf8_meta(meta)
    if arguments is not None:
        if not isinstance(arguments, dict):
            raise SerializationError(f"arguments must be a dict, not {type(arguments).__name__}")
        check_nesting(arguments, "the arguments")  # before the folder exists: none left behind
    perms.check_path_room(job_dir)
    made = not job_dir.exists()
    if not made:
        perms.check_own_job_dir(job_dir)
    trust.check_new_job_folder(job_dir)  # review35 F3: in a folder others can write
    try:
        perms.make_dir(job_dir)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            # the folder that refused it, its owner and the fix (review34 F5: this named
            # a job.h5 in the folder that was never made, and no fix)
            why = perms.store_write_error(exc, f"make the job's folder {job_dir.name}")
            raise StoreError(str(why)) from exc
        raise _write_error(job_dir / JOB_FILE, exc) from exc
    perms.check_own_job_dir(job_dir)  # made by another meanwhile (make_dir takes it)

    def fill(f: h5py.File) -> None:
        L.stamp(f, L.FILE_ENCODING)
        write_native(f, L.META_GROUP, dict(meta))
        f[L.META_GROUP].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION
        _write_arguments(f, arguments or {})
        L.stamp(f.create_group(L.RUNS), "qshpc-runs")
        L.create_log(f)
        batch = Batch(Ends(), 0)
        batch.add_event(L.EVENT_STATE, encode_blob([STATES[0], None]))
        write_commit(f[L.COMMITS], append_frame(f, Ends(), batch.frame(), []))
        f.attrs["created"] = float(meta.get("created", time.time()))
        f.attrs[L.NONCE_ATTR] = np.void(os.urandom(8))  # this job's (review49 F3)

    try:
        _atomic_h5(job_dir / JOB_FILE, fill, exclusive=True)
    except FileExistsError:  # another's job: never replaced, nor its folder removed
        from qshpc.store.jobref import job_ref
        from qshpc.text import shown

        raise UserError(
            f"job directory {shown(job_dir)} holds a job already (made before, or meanwhile by "
            "another run): choose another job directory, or resume that job "
            f"(`qshpc run PROGRAM --resume {job_ref(job_dir)}`)"
        ) from None
    except BaseException as exc:
        if made:  # a refused job leaves no folder behind
            import shutil

            shutil.rmtree(job_dir, ignore_errors=True)
        if isinstance(exc, UnicodeEncodeError):  # (review56 M3: h5py's, with a traceback)
            where = _surrogate_at(arguments or {}, "arguments")
            if where is not None:
                raise UserError(
                    f"{where[0]}, {_raw(where[1])!r}, is not valid UTF-8: the job store records "
                    "text as UTF-8; give it in UTF-8 (rename a file whose name it is)"
                ) from None
        raise


def _raw(text: str) -> bytes:
    """``text``'s bytes as the file system gave them (a lone surrogate from
    ``os.fsdecode``), or escaped where it holds another one."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def _surrogate_at(value: Any, where: str) -> tuple[str, str] | None:
    """Where in ``value`` (dicts, lists, tuples walked) a string UTF-8 cannot hold is, and it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where, value
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _surrogate_at(k, f"{where}: the key {_raw(str(k))!r}") or _surrogate_at(
                v, f"{where}[{_raw(str(k)).decode('utf-8', 'backslashreplace')!r}]"
            )
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _surrogate_at(v, f"{where}[{i}]")
            if found:
                return found
    return None


def _h5_name(path: Path) -> Path:
    """The HDF5 name to suggest for ``path`` (a .json name): ``a.json`` -> ``a.h5``, and
    ``a.h5.json`` -> ``a.h5``, not ``a.h5.h5`` (review47 F5)."""
    bare = path.with_suffix("")
    return bare if bare.suffix.lower() in (".h5", ".hdf5") else path.with_suffix(".h5")


def save_arguments(path: str | os.PathLike[str], arguments: dict[str, Any]) -> None:
    """Write ``arguments`` to a standalone .h5 file (atomically, mode 0600).

    Raises:
        SerializationError: When ``arguments`` is not a dict or cannot be stored.
        StoreError: When the file cannot be written.
        UserError: The two swapped (``save_arguments(arguments, path)``), or a name
            ending in .json (review44 F4: ``args.json`` got HDF5, and ``--arguments
            args.json`` then said "not valid JSON (utf-8 codec ...)"); a name without a
            suffix, or another one, is written (and loaded back) as HDF5, as before.
    """
    if isinstance(path, dict) and isinstance(arguments, str | os.PathLike):
        raise UserError(
            f"save_arguments takes the file first: save_arguments({str(arguments)!r}, "
            "arguments), not the arguments first"
        )
    path = Path(path)
    if path.suffix.lower() == ".json":  # (any other name loads back as HDF5, as it did)
        from qshpc.text import shown

        raise UserError(
            f"save_arguments writes an HDF5 file, and {shown(str(path))} ends in .json, "
            f"which `--arguments` reads as JSON: name it {shown(str(_h5_name(path)))}"
            " (or write a .json file of plain values yourself, with json.dump)"
        )

    def fill(f: h5py.File) -> None:
        L.stamp(f, ARGUMENTS_FILE_TYPE)
        _write_arguments(f, arguments)

    _atomic_h5(path, fill)


#: What to do with an HDF5 file that ``save_arguments`` did not write (review24 F11: the
#: message said what, not the fix).
_WRITE_IT = "write it with qshpc.save_arguments(path, {...}), or give a .json of plain values"


def _bad(path: Path, why: str) -> UserError:
    if "not a qshpc store" in why:
        why = f"{why}: {_WRITE_IT}"
    return UserError(f"cannot load arguments from {path}: {why}")


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _looks_hdf5(path: Path) -> bool:
    """An HDF5 signature at 0, 512, 1024, ... (where HDF5 looks), read without HDF5."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            head = fh.read(8)
            if len(head) < 8:
                return False
            if head == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2


def _hdf5_inside(path: Path) -> bool:
    """Whether ``path`` holds an HDF5 file (False when it cannot be read)."""
    try:
        return _looks_hdf5(path)
    except OSError:
        return False


#: The bytes of a JSON arguments file looked at for a NUL before it is read whole.
_JSON_HEAD = 64 << 10


def _read_json(path: Path) -> Any:
    """The value the JSON arguments file ``path`` holds; refused before it is read whole when
    it holds a NUL byte near its start, or is larger than ``QSHPC_ARGUMENTS_JSON_MAX``.

    review50 F7: a 20 GB file (of zeros) was read whole, and rank 0 was OOM-killed (a 3 GB
    one: 6.3 GB resident, 11 s, then "not valid JSON").

    Raises:
        UserError: Naming the file, what it is, and the way on.
    """
    from qshpc import settings

    limit = settings.ARGUMENTS_JSON_MAX.get()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(_JSON_HEAD)
        nul = head.find(b"\0")
        if (nul >= 0 or size > limit) and _hdf5_inside(path):
            raise _hdf5_named_json(path)
        if nul >= 0 and head.strip(b"\0"):
            enc = json.detect_encoding(head)
            if enc.startswith(("utf-16", "utf-32")):  # (review54: "a binary file" was said)
                raise _bad(
                    path, f"it is {enc.upper()} text, and a JSON arguments file is read as "
                    f"UTF-8: convert it (iconv -f {enc.upper()} -t UTF-8 {path} > "
                    f"{path.with_name(path.stem + '-utf8.json')})",
                )  # fmt: skip
        if nul >= 0:
            raise _bad(
                path, f"not valid JSON: byte {nul} is a NUL byte (a binary file, or a damaged "
                "or truncated one?); give a .json file of plain values, or the .h5 file "
                "qshpc.save_arguments writes",
            )  # fmt: skip
        if size > limit:
            raise _bad(
                path, f"it is {size:,} bytes, over the {limit:,} a JSON arguments file may "
                "hold (it is read whole: about 4 times that in memory). Save "
                "large arguments with qshpc.save_arguments to a .h5 file, or pass big data as "
                "a file the program reads (its path as an argument); or raise the limit: "
                f"{settings.ARGUMENTS_JSON_MAX.name}=BYTES",
            )  # fmt: skip
        data = head + fh.read()
    return json.loads(data.decode("utf-8"))


def _hdf5_named_json(path: Path) -> UserError:
    """review44 F4: ``save_arguments('args.json', ...)`` before fix42e wrote HDF5."""
    return _bad(
        path, "it is an HDF5 file under a .json name (an older qshpc.save_arguments wrote "
        f"HDF5 whatever the name): rename it to {_h5_name(path).name}",
    )  # fmt: skip


def load_arguments(
    path: str | os.PathLike[str],
    allow_pickle: bool = False,
    plain: bool = False,
    raw_qpy: bool = False,
) -> dict[str, Any]:
    """Load arguments from a .h5 file written by :func:`save_arguments` or a .json file.

    A .h5 file without an integrity seal (an older qshpc wrote it) is read in a
    child process under a time limit (``plain`` is that child's own call).
    ``raw_qpy``: circuits of a sealed .h5 file stay QPY bytes
    (:class:`~qshpc.store.encoding_h5.QPYBytes`), for :func:`create_job` to store as they are.

    Raises:
        UserError: When the file is missing, corrupt, damaged, nested too deeply,
            or its top level is not a dict.
        SchemaVersionError: For an .h5 file of an unknown schema version.
        StoreError: For pickled data without ``allow_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    if path.suffix.lower() == ".json":
        try:
            value = _read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if _hdf5_inside(path):
                raise _hdf5_named_json(path) from None
            raise _bad(path, f"not valid JSON ({exc})") from exc
        except RecursionError:
            raise _bad(path, f"it nests deeper than Python can read ({_NEST_HINT})") from None
        except MemoryError:  # hunt21b: a sparse 100 GB file was a traceback from rank 0
            raise _bad(
                path, f"{path.stat().st_size:,} bytes, more than this process can hold "
                "(save large arguments with qshpc.save_arguments to a .h5 file)",
            ) from None  # fmt: skip
    else:
        try:
            if not _looks_hdf5(path):
                raise _bad(path, "not an HDF5 (.h5) or JSON (.json) file")
            f = L.open_read(path, plain=plain)
        except L.UnsealedError:
            from qshpc.store import isolate

            try:
                return isolate.load_arguments(path, allow_pickle)
            except DamagedStoreError as exc:
                raise _bad(path, f"it is damaged: {exc.detail}") from None
        except SchemaVersionError:
            raise
        except DamagedStoreError as exc:
            raise _bad(path, f"it is damaged: {exc.detail}") from None
        except StoreError as exc:
            raise _bad(path, str(exc)) from None
        except OSError as exc:
            raise _bad(path, f"unreadable ({exc.strerror or exc})") from None
        try:
            if L.ARGUMENTS not in f:
                raise _bad(path, f"no /arguments group: {_WRITE_IT}")
            value = read_native(f[L.ARGUMENTS], allow_pickle, str(path), raw_qpy)
        except (UserError, StoreError):
            raise
        except Exception as exc:
            bad = L.damage_of(f)
            raise _bad(
                path, f"it is damaged: {bad}" if bad else f"unreadable HDF5 ({exc})"
            ) from None
        finally:
            L.close_read(f)
    if not isinstance(value, dict):
        raise _bad(path, f"the top level must be a dict (mapping), not {type(value).__name__}")
    try:
        check_nesting(value, "the arguments")
    except SerializationError as exc:
        raise _bad(path, str(exc)) from None
    return value
