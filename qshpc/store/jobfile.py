"""Creating job files, and the standalone arguments files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py

from qshpc.errors import SchemaVersionError, SerializationError, StoreError, UserError
from qshpc.store import layout as L
from qshpc.store import perms
from qshpc.store.batch import Batch, Ends
from qshpc.store.encoding_blob import encode_blob
from qshpc.store.encoding_h5 import read_native, write_native
from qshpc.store.log import append_frame, write_commit
from qshpc.store.records import JOB_FILE, STATES

ARGUMENTS_FILE_TYPE = "qshpc-arguments"


def _write_error(path: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot write {path}: {exc.strerror or exc}. Check that the folder is writable and "
        f"that its file system has free space (df -h {path.parent})"
    )


def _atomic_h5(path: Path, fill: Any) -> None:
    """Write an HDF5 file through ``path.tmp`` and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w", libver="latest", locking=False) as f:
            perms.set_file_mode(tmp)
            fill(f)
        L.fsync_path(tmp)
        os.replace(tmp, path)
        L.fsync_path(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_arguments(f: h5py.File, arguments: dict[str, Any]) -> None:
    if not isinstance(arguments, dict):
        raise SerializationError(f"arguments must be a dict, not {type(arguments).__name__}")
    write_native(f, L.ARGUMENTS, arguments)
    f[L.ARGUMENTS].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION


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
    """
    job_dir = Path(job_dir)
    try:
        perms.make_dir(job_dir)
    except OSError as exc:
        raise _write_error(job_dir / JOB_FILE, exc) from exc
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"job meta must be JSON-able: {exc}") from exc

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

    _atomic_h5(job_dir / JOB_FILE, fill)


def save_arguments(path: str | os.PathLike[str], arguments: dict[str, Any]) -> None:
    """Write ``arguments`` to a standalone .h5 file (atomically, mode 0600).

    Raises:
        SerializationError: When ``arguments`` is not a dict or cannot be stored.
        StoreError: When the file cannot be written.
    """
    path = Path(path)

    def fill(f: h5py.File) -> None:
        L.stamp(f, ARGUMENTS_FILE_TYPE)
        _write_arguments(f, arguments)

    _atomic_h5(path, fill)


def _bad(path: Path, why: str) -> UserError:
    return UserError(f"cannot load arguments from {path}: {why}")


def load_arguments(path: str | os.PathLike[str], allow_pickle: bool = False) -> dict[str, Any]:
    """Load arguments from a .h5 file written by :func:`save_arguments` or a .json file.

    Raises:
        UserError: When the file is missing, corrupt, or its top level is not a dict.
        SchemaVersionError: For an .h5 file of an unknown schema version.
        StoreError: For pickled data without ``allow_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad(path, f"not valid JSON ({exc})") from exc
    else:
        if not h5py.is_hdf5(path):
            raise _bad(path, "not an HDF5 (.h5) or JSON (.json) file")
        try:
            with h5py.File(path, "r", locking=False) as f:
                try:
                    L.check_schema(f, path)
                except SchemaVersionError:
                    raise
                except StoreError as exc:
                    raise _bad(path, str(exc)) from exc
                if L.ARGUMENTS not in f:
                    raise _bad(path, "no /arguments group (was it written by save_arguments?)")
                value = read_native(f[L.ARGUMENTS], allow_pickle, str(path))
        except OSError as exc:
            raise _bad(path, f"unreadable HDF5 ({exc})") from exc
    if not isinstance(value, dict):
        raise _bad(path, f"the top level must be a dict (mapping), not {type(value).__name__}")
    return value
