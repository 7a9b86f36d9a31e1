"""Rebuilding a job file whose writer was killed.

HDF5 marks a file open for SWMR writing in its superblock; after a kill the
mark stays and HDF5 refuses to open the file for writing again (only SWMR
readers get in). :func:`recover` copies the committed part of such a file into
a fresh one and renames it over the original, so a resumed job can append.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from qshpc.store import layout as L
from qshpc.store import perms
from qshpc.store.log import last_commit, write_commit

_STEP = 1 << 26  # copy the byte streams 64 MiB at a time


def recover(path: Path) -> None:
    """Replace ``path`` by a clean copy of its committed content (atomic rename)."""
    tmp = path.with_name(path.name + ".recover")
    try:
        with (
            h5py.File(path, "r", swmr=True, locking=False) as src,
            h5py.File(tmp, "w", libver="latest", locking=False) as dst,
        ):
            perms.set_file_mode(tmp)
            L.check_schema(src, path)
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                if name != L.LOG:
                    src.copy(src[name], dst, name)
            ends = last_commit(src)
            L.create_log(dst)
            for name, end in (
                (L.META, ends.meta),
                (L.DATA, ends.data),
                (L.LARGE, ends.large),
                (L.RECORDS, ends.records),
                (L.EVENTS, ends.events),
            ):
                if end:
                    dst[name].resize((end,))
                    for start in range(0, end, _STEP):
                        stop = min(end, start + _STEP)
                        dst[name][start:stop] = src[name][start:stop]
            write_commit(dst[L.COMMITS], ends)
        L.fsync_path(tmp)
        os.replace(tmp, path)
        L.fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
