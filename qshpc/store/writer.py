"""The single writer of a running job (rank 0)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.errors import DamagedStoreError, StoreError
from qshpc.store import layout as L
from qshpc.store.batch import Batch, Ends, Frame, prefix
from qshpc.store.chunk import RecordChunk
from qshpc.store.encoding_blob import encode_blob, encode_blob_parts
from qshpc.store.encoding_h5 import write_native
from qshpc.store.journal import JournalWriter, nonce_of
from qshpc.store.log import LogReader, journal_frames, last_commit
from qshpc.store.readback import Source, open_file, open_h5
from qshpc.store.records import STATES, TERMINAL_STATES, TaskRecord
from qshpc.store.snapshot import SLACK, NotWritten, io_error, snapshot
from qshpc.store.space import (
    RESUME_FIX,
    disk_full,
    drop_reserve,
    full_error,
    make_reserve,
    start_fix,
)

#: Bytes left free when a full disk's commit writes what fits (blocks, the file's metadata).
_FULL_MARGIN = 64 << 10


def _kept_fix(kept: int, total: int) -> str:
    """What a commit that met a full disk kept, and what to do."""
    if not total:
        return RESUME_FIX
    return (
        f"of the {total} task result(s) of that commit {kept} were committed, "
        f"{total - kept} lost (they run again on resume); {RESUME_FIX}"
    )


class JobWriter:
    """Appends task records, status and results of a running job.

    Only rank 0 writes. Each :meth:`commit` appends one frame to the journal
    beside ``job.h5``; it is durable against a kill of this process once
    :meth:`commit` returns, and readers see it at once. :meth:`open` and
    :meth:`finalize` fold the journal into ``job.h5`` (atomic rename).
    """

    def __init__(self, path: Path, journal: JournalWriter, ends: Ends, run: int) -> None:
        self.path = path
        self._journal: JournalWriter | None = journal
        self._run = run
        self._batch = Batch(ends, run)
        self._result: tuple[Any, bool, int] | None = None  # (value, in the large stream, bytes)
        self._broken: StoreError | None = None
        self._full = False  # the disk filled up: only the final state is still written
        #: Why :meth:`finalize` could not complete ``job.h5`` (its folder made read-only while
        #: the job ran), the final state and result being whole in the journal; else None.
        self.unfolded: NotWritten | None = None
        #: The job's lock (:class:`qshpc.store.lock.JobLock`) when this writer holds one:
        #: a writer whose lock another run took over stops writing.
        self.lock: Any = None
        self._pid = os.getpid()  # the one process that writes the job (not a fork of it)
        #: The job's nonce (``job.h5``'s ``job-nonce``): each reopen of ``job.h5`` checks it.
        self.nonce = b""

    @classmethod
    def open(cls, job_dir: str | os.PathLike[str], runtime: dict[str, Any]) -> JobWriter:
        """Open the job created by ``create_job``, record a new run, and go RUNNING.

        A journal left by a killed writer is folded into ``job.h5`` first.

        Args:
            job_dir: The job directory.
            runtime: mpi_size, ranks, started, qiskit/qiskit_aer/python versions,
                slurm, resume (stored as ``/runs/<n>``).

        Raises:
            JobNotFoundError: When ``job_dir`` does not exist.
            StoreError: When ``job.h5`` cannot be read or written.
        """
        job_dir = Path(job_dir)
        path = L.job_file(job_dir)
        if not path.is_file():
            raise L.open_error(path, FileNotFoundError(path))
        found: list[tuple[int, Ends, bytes]] = []

        def new_run(f: h5py.File) -> None:
            if L.RESULT in f:
                del f[L.RESULT]
            for attr in ("state", "finished"):
                if attr in f.attrs:
                    del f.attrs[attr]
            run = len(f[L.RUNS]) + 1
            write_native(f[L.RUNS], str(run), dict(runtime))
            nonce = nonce_of(f)
            if not nonce:  # a job an older qshpc created: its nonce from now on
                nonce = os.urandom(8)
                f.attrs[L.NONCE_ATTR] = np.void(nonce)
            found.append((run, last_commit(f), nonce))

        token = os.urandom(8)
        try:
            snapshot(path, new_run, "open for writing", next_token=token)
        except DamagedStoreError as exc:
            if runtime.get("resume"):
                from qshpc.store.reader import resume_refused

                raise resume_refused(job_dir, exc) from None
            raise
        except StoreError as exc:
            if not disk_full(exc):
                raise
            fix = start_fix(path, SLACK, started=_ran_before(path))
            raise full_error(path, "open for writing", fix) from None
        run, ends, nonce = found[0]
        try:
            journal = JournalWriter(path.with_name(L.JOURNAL_FILE), token)
        except OSError as exc:
            raise io_error(path.with_name(L.JOURNAL_FILE), exc, "create") from exc
        writer = cls(path, journal, ends, run)
        writer.nonce = nonce
        make_reserve(job_dir)  # room for the final state should the disk fill up
        writer._batch.add_event(L.EVENT_STATE, encode_blob([STATES[1], None]))
        writer._batch.add_event(L.EVENT_STATUS, encode_blob(""))
        writer.commit()
        return writer

    def _check(self) -> JournalWriter:
        if self._broken is not None:
            raise self._broken
        if os.getpid() != self._pid:  # two writers of one journal: the job was DAMAGED
            raise StoreError(
                f"this process (pid {os.getpid()}) is a child forked from the job's writer "
                f"(pid {self._pid}) and cannot write the job {self.path.parent.name}: only "
                "the process that runs the program does (end a forked child with os._exit)"
            )
        lost = getattr(self.lock, "lost", None)
        if lost:
            self._broken = StoreError(f"{lost}; this run stops writing the job (one writer)")
            raise self._broken
        if self._journal is None:
            raise StoreError(f"the writer of {self.path} is closed")
        return self._journal

    def _check_still_ours(self) -> None:
        """Before ``job.h5`` is replaced: the lock must still be this run's."""
        lost = self.lock.check() if self.lock is not None else None
        if lost:
            self._broken = StoreError(f"{lost}; this run stops writing the job (one writer)")
            raise self._broken

    def append_task(self, rec: TaskRecord) -> tuple[int, int, int] | None:
        """Queue one task record (durable at the next :meth:`commit`); where its result
        goes in the log (:meth:`Batch.add_record <qshpc.store.batch.Batch.add_record>`)."""
        self._check()
        return self._batch.add_record(rec)

    def append_hit(self, *fields: Any) -> None:
        """Queue the record of a result taken from the result cache (durable at the next
        :meth:`commit`): ``fields`` as :meth:`Batch.add_hit
        <qshpc.store.batch.Batch.add_hit>` takes them; the bytes :meth:`append_task` of its
        :class:`TaskRecord` queues (SUCCEEDED, attempt 1, started when it finished)."""
        self._check()
        self._batch.add_hit(*fields)

    def append_chunk(self, chunk: RecordChunk) -> None:
        """Queue records a worker encoded (durable at the next :meth:`commit`)."""
        self._check()
        self._batch.add_chunk(chunk)

    def commit(self) -> None:
        """Write everything queued; durable (against a kill of this process) on return.

        Raises:
            StoreError: When the journal cannot be written (disk full, ...); the
                writer is unusable afterwards, earlier commits stay intact.
        """
        journal = self._check()
        if self._batch.empty():
            return
        frame = self._batch.frame()
        try:
            journal.append(frame)
        except OSError as exc:
            if disk_full(exc):  # keep the journal: the final state goes there (finalize)
                self._full = True
                kept = self._commit_what_fits(journal, frame)
                self._broken = full_error(
                    journal.path, "a commit", _kept_fix(kept, len(frame.records))
                )
            else:
                self._broken = io_error(journal.path, exc, "write to")
                self._close_journal()
            raise self._broken from exc
        self._batch = Batch(frame.end(), self._run)

    def _commit_what_fits(self, journal: JournalWriter, frame: Frame) -> int:
        """On a full disk, commit the longest run of the frame's first records that its
        file system can still take (review50 F2: the whole batch was lost); how many."""
        n = len(frame.records)
        try:
            room = journal.room() - _FULL_MARGIN
        except OSError:
            return 0
        lo, hi = 0, n  # the first lo records fit, all n do not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if journal.size_of(prefix(frame, mid)) <= room:
                lo = mid
            else:
                hi = mid
        while lo > 0:
            part = prefix(frame, lo)
            try:
                journal.append(part)
            except OSError:
                lo //= 2  # the estimate was off (blocks, metadata): try less
                continue
            self._batch = Batch(part.end(), self._run)
            return lo
        return 0

    def checkpoint(self) -> None:
        """Fold the journal into ``job.h5`` now (atomic rename) and start a new journal.

        Afterwards ``job.h5`` alone holds every committed record; the runtime
        calls this now and then so that the file itself stays close to current.
        """
        self.commit()
        self._check_still_ours()
        found: list[Ends] = []
        token = os.urandom(8)
        try:
            snapshot(
                self.path, lambda f: found.append(last_commit(f)), "checkpoint",
                nonce=self.nonce, next_token=token,
            )  # fmt: skip
        except NotWritten:  # the folder made read-only: likewise (finalize says so)
            return
        except StoreError as exc:
            if disk_full(exc):  # no room for the copy: carry on in the journal, which is whole
                return
            raise
        self._close_journal()  # folded in and deleted
        try:
            self._journal = JournalWriter(self._jpath(), token)
        except OSError as exc:
            self._broken = io_error(self._jpath(), exc, "create")
            raise self._broken from exc
        self._batch = Batch(found[0], self._run)

    def journal_bytes(self) -> int:
        """Size of the journal not yet folded into ``job.h5``."""
        try:
            return self._jpath().stat().st_size
        except OSError:
            return 0

    def set_status(self, sub_status: str) -> None:
        """Set the job's sub-status text (committed at once)."""
        self._check()
        self._batch.add_event(L.EVENT_STATUS, encode_blob(str(sub_status)))
        self.commit()

    def add_spans(self, spans: list[list[float]], submitted: int) -> None:
        """Queue rank 0's program and wait spans ``[t0, t1, kind, n]`` and the count of tasks
        the program submitted so far (written with the next commit)."""
        self._check()
        rows = [[float(v) for v in s] for s in spans]
        self._batch.add_event(L.EVENT_SPANS, encode_blob({"spans": rows, "submitted": submitted}))

    def save_result(self, value: Any) -> None:
        """Store the job's result; durable at return.

        A result over 1 MiB encoded is kept once, in the log's large stream (its
        arrays written from their own memory, no copy); :meth:`finalize` stores
        smaller ones natively as ``/result`` too.

        Raises:
            StoreError: When the journal cannot take it (its file system full or read-only):
                the result is then written outside the job (:mod:`qshpc.store.rescue`), and
                the error names that file.
        """
        try:
            self._check()
            parts = encode_blob_parts(value)
            where = self._batch.add_event(L.EVENT_RESULT, parts)
            self.commit()
        except StoreError as exc:  # computed but not stored: keep it elsewhere (hunt23b)
            if exc is not self._broken:  # not a failed write (a forked child's call): as is
                raise
            raise self._rescue(value, exc) from exc
        self._result = (value, where == L.WHERE_LARGE, sum(len(p) for p in parts))

    def _rescue(self, value: Any, exc: StoreError) -> StoreError:
        """Write the result the journal could not take outside the job; the error says where.

        It becomes the writer's error, so a final state written after a full disk
        (:meth:`_finish_full`) names the file too.
        """
        from qshpc.store.rescue import rescue_result, rescued_error

        self._broken = rescued_error(exc, rescue_result(self.path.parent, value))
        return self._broken

    def done_records(self) -> dict[str, TaskRecord]:
        """Key -> latest SUCCEEDED record (results loaded), committed ones only."""
        self.commit()
        with L.open_read(self.path) as f:
            log = LogReader(f, str(self.path), journal_frames(f, self.path), self._jpath())
            return log.done_records(allow_pickle=True)

    def large_source(self, off: int, n: int) -> Source:
        """The file that holds the ``n`` committed bytes at ``off`` of the log's large stream,
        open at them: this writer's journal when one of its commits wrote them, else
        ``job.h5`` (they were folded in). Call it under the lock that :meth:`commit` and
        :meth:`checkpoint` are called under; what it returns reads the same bytes after
        either (the file stays open: a checkpoint replaces ``job.h5`` and the journal by
        new files, never changes them).

        Raises:
            StoreError: Neither file can be opened, or ``job.h5`` holds no such bytes.
        """
        journal = self._journal
        if journal is not None:
            at = journal.large_at(off, n)
            if at is not None:
                return open_file(journal.path, at, journal.blob_crc(off, n))
        return open_h5(self.path, off, n, self.nonce)

    def _jpath(self) -> Path:
        return self.path.with_name(L.JOURNAL_FILE)

    def finalize(self, state: str, error: str | None = None) -> None:
        """End the job: record ``state``, fold the journal, write ``/result`` natively.

        ``job.h5`` is copied, completed and renamed into place (atomic); a crash
        during this leaves the old file and the journal, which hold the final
        state and the blob-encoded result.

        Args:
            state: SUCCEEDED, FAILED or CANCELED.
            error: Error text for FAILED/CANCELED.
        """
        if state not in TERMINAL_STATES:
            raise ValueError(f"final state must be one of {TERMINAL_STATES}, not {state!r}")
        if self._full:
            self._finish_full(state, error)
            return
        self._check()
        self._batch.add_event(L.EVENT_STATE, encode_blob([state, error]))
        try:
            self.commit()
        except StoreError:
            if not self._full:
                raise
            self._finish_full(state, error)
            return
        self._close_journal()
        self._check_still_ours()
        result = self._result

        def complete(f: h5py.File) -> None:
            if result is not None and not result[1]:  # a large one is in /log/large already
                write_native(f, L.RESULT, result[0])
                f[L.RESULT].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION
            f.attrs["state"] = state
            f.attrs["finished"] = time.time()

        native = result is not None and not result[1]
        try:  # a native result takes about 4x its encoding at most (HDF5's per-node overhead)
            growth = 4 * result[2] if native and result else 0
            snapshot(self.path, complete, "finalize", growth, nonce=self.nonce)
        except NotWritten as exc:
            # Committed in the journal, which readers read; the run says so and ends non-zero
            self.unfolded = exc
        except StoreError as exc:
            if not disk_full(exc):
                raise
            # The final state is committed in the journal, which readers read:
            # only the compaction into job.h5 is left for a later run or `recover`.
        finally:
            drop_reserve(self.path.parent)

    def _finish_full(self, state: str, error: str | None) -> None:
        """The disk is full: write the final state (FAILED) into the reserve's space, no copy."""
        assert self._broken is not None
        journal = self._journal
        drop_reserve(self.path.parent)
        if journal is None:
            raise self._broken
        why = str(self._broken)
        if state != "CANCELED":
            state = "FAILED"
        if not error:
            error = why
        elif why not in error:
            error = f"{error}\n{why}"
        batch = Batch(self._batch.start, self._run)
        batch.add_event(L.EVENT_STATE, encode_blob([state, error]))
        try:
            journal.append(batch.frame())
        except OSError as exc:
            raise full_error(journal.path, "the final state") from exc
        finally:
            self._close_journal()

    @property
    def disk_full(self) -> StoreError | None:
        """The error, when the disk filled up under this writer (it writes no more)."""
        return self._broken if self._full else None

    def _close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def close(self) -> None:
        """Commit what is queued and close (the job stays RUNNING unless finalized)."""
        try:
            if self._journal is not None and self._broken is None:
                self.commit()
        finally:
            self._close_journal()
            drop_reserve(self.path.parent)

    def __enter__(self) -> JobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recover(job_dir: Path) -> None:
    """Fold a dead writer's journal into ``job.h5`` (atomic), so the file alone holds it all.

    Call only when no writer runs for this job (its ranks are gone).
    """
    path = L.job_file(job_dir)
    if path.with_name(L.JOURNAL_FILE).exists():
        snapshot(path, lambda f: None, "recover")


def _ran_before(path: Path) -> bool:
    """Whether a run of the job in ``path`` was recorded (True when that cannot be read)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return len(f[L.RUNS]) > 0
    except Exception:
        return True
