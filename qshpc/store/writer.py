"""The single writer of a running job (rank 0)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import h5py

from qshpc.errors import StoreError
from qshpc.store import layout as L
from qshpc.store import perms
from qshpc.store.encoding_blob import encode_blob
from qshpc.store.encoding_h5 import write_native
from qshpc.store.log import LogReader, LogWriter, last_commit
from qshpc.store.records import STATES, TERMINAL_STATES, TaskRecord
from qshpc.store.recover import recover


def _io_error(path: Path, exc: BaseException, what: str) -> StoreError:
    why = getattr(exc, "strerror", None) or str(exc)
    return StoreError(
        f"cannot {what} {path}: {why}. Free space on its file system (df -h {path.parent}) "
        f"or make it writable; everything committed before this error is intact"
    )


def _open_rw(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r+", libver="latest", locking=False, rdcc_nbytes=0)
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
    recover(path)  # a writer died holding the file: rebuild it from its committed part
    return h5py.File(path, "r+", libver="latest", locking=False, rdcc_nbytes=0)


class JobWriter:
    """Appends task records, status and results to ``job.h5`` while the job runs.

    Only rank 0 writes. Records are durable once :meth:`commit` returns, even if
    the process is killed right after (see :mod:`qshpc.store.log`).
    """

    def __init__(self, path: Path, f: h5py.File, run: int) -> None:
        self.path = path
        self._f: h5py.File | None = f
        self._log = LogWriter(f, run)
        self._result: tuple[Any] | None = None
        self._broken: StoreError | None = None

    @classmethod
    def open(cls, job_dir: Path, runtime: dict[str, Any]) -> JobWriter:
        """Open the job created by ``create_job``, record a new run, and go RUNNING.

        Args:
            job_dir: The job directory.
            runtime: mpi_size, ranks, started, qiskit/qiskit_aer/python versions,
                slurm, resume (stored as ``/runs/<n>``).

        Raises:
            JobNotFoundError: When ``job_dir`` does not exist.
            StoreError: When ``job.h5`` cannot be opened for writing.
        """
        path = L.job_file(job_dir)
        try:
            f = _open_rw(path)
        except OSError as exc:
            raise L.open_error(path, exc) from exc
        try:
            L.check_schema(f, path)
            ends = last_commit(f)
            for name, end in (
                (L.META, ends.meta),
                (L.DATA, ends.data),
                (L.LARGE, ends.large),
                (L.RECORDS, ends.records),
                (L.EVENTS, ends.events),
            ):
                f[name].resize((end,))  # drop anything a killed writer left uncommitted
            if L.RESULT in f:
                del f[L.RESULT]
            runs = f[L.RUNS]
            run = len(runs) + 1
            write_native(runs, str(run), dict(runtime))
            f.flush()
            f.swmr_mode = True
        except OSError as exc:
            f.close()
            raise _io_error(path, exc, "open for writing") from exc
        except BaseException:
            f.close()
            raise
        writer = cls(path, f, run)
        writer._log.add_event(L.EVENT_STATE, encode_blob([STATES[1], None]))
        writer._log.add_event(L.EVENT_STATUS, encode_blob(""))
        writer.commit()
        return writer

    def _check(self) -> None:
        if self._broken is not None:
            raise self._broken
        if self._f is None:
            raise StoreError(f"the writer of {self.path} is closed")

    def append_task(self, rec: TaskRecord) -> None:
        """Queue one task record (durable at the next :meth:`commit`)."""
        self._check()
        self._log.add_record(rec)

    def commit(self) -> None:
        """Write everything queued and flush; durable once this returns.

        Raises:
            StoreError: When the file cannot be written (disk full, ...); the
                writer is unusable afterwards, earlier commits stay intact.
        """
        self._check()
        try:
            self._log.commit()
            return
        except (OSError, RuntimeError) as exc:
            traceback.clear_frames(exc.__traceback__)
            self._broken = _io_error(self.path, exc, "write to")
        # Raised outside the except block: the HDF5 error's frames hold dataset
        # handles, and an HDF5 handle that outlives a failed file crashes at exit.
        self._close_file()
        raise self._broken

    def set_status(self, sub_status: str) -> None:
        """Set the job's sub-status text (committed at once)."""
        self._check()
        self._log.add_event(L.EVENT_STATUS, encode_blob(str(sub_status)))
        self.commit()

    def save_result(self, value: Any) -> None:
        """Store the job's result; durable at return, stored natively by :meth:`finalize`."""
        self._check()
        self._log.add_event(L.EVENT_RESULT, encode_blob(value))
        self.commit()
        self._result = (value,)

    def done_records(self) -> dict[str, TaskRecord]:
        """Key -> latest SUCCEEDED record (results loaded), committed ones only."""
        self._check()
        assert self._f is not None
        self.commit()
        return LogReader(self._f, str(self.path)).done_records(allow_pickle=True)

    def finalize(self, state: str, error: str | None = None) -> None:
        """End the job: record ``state``, write ``/result`` natively, close.

        The SWMR file is closed, copied to ``job.h5.tmp``, completed there and
        renamed over ``job.h5`` (atomic); a crash during this leaves the
        committed SWMR file, which holds the final state and blob result.

        Args:
            state: SUCCEEDED, FAILED or CANCELED.
            error: Error text for FAILED/CANCELED.
        """
        if state not in TERMINAL_STATES:
            raise ValueError(f"final state must be one of {TERMINAL_STATES}, not {state!r}")
        self._check()
        assert self._f is not None
        self._log.add_event(L.EVENT_STATE, encode_blob([state, error]))
        self.commit()
        finished = time.time()
        self._close_file()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            shutil.copyfile(self.path, tmp)
            perms.set_file_mode(tmp)
            with h5py.File(tmp, "r+", libver="latest", locking=False) as f:
                if self._result is not None:
                    write_native(f, L.RESULT, self._result[0])
                    f[L.RESULT].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION
                f.attrs["state"] = state
                f.attrs["finished"] = finished
            L.fsync_path(tmp)
            os.replace(tmp, self.path)
            L.fsync_path(self.path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _io_error(self.path, exc, "finalize") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _close_file(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            self._log.release()
            with contextlib.suppress(Exception) if self._broken else contextlib.nullcontext():
                f.close()

    def close(self) -> None:
        """Commit what is queued and close (the job stays RUNNING unless finalized)."""
        if self._f is not None and self._broken is None:
            try:
                self.commit()
            finally:
                self._close_file()
        self._close_file()

    def __enter__(self) -> JobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
