"""The job as rank 0 sees it while the program runs: arguments, store, result."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc import settings
from qshpc.errors import SerializationError, StoreError
from qshpc.program.refs import Stored
from qshpc.store.records import INEXACT as _INEXACT
from qshpc.store.records import DeferredResult, InStore
from qshpc.store.records import TaskRecord as _TaskRecord
from qshpc.store.rowpack import WHERE_LARGE as _WHERE_LARGE
from qshpc.task import context
from qshpc.task.execute import Outcome, unsendable

if TYPE_CHECKING:
    from qshpc.cache.jobcache import JobCache
    from qshpc.cache.store import Hit
    from qshpc.store import JobWriter, TaskRecord
    from qshpc.store.chunk import RecordChunk

#: Results this size or smaller are not counted by :meth:`Session.hold` (a worker encodes
#: them itself: :data:`qshpc.store.chunk.SHIP_ENCODED_MAX`).
_HOLD_MIN = 64 << 10
_COMMIT_EVERY_S = 0.05
_COMMIT_EVERY_N = 2000
# Rank 0's program and waits (see JobReader.spans): kinds, how close two waits merge,
# and how long spans may wait for a commit before a sync writes them alone.
SPAN_GET, SPAN_WAIT, SPAN_PROGRAM = 0, 1, 2
_SPAN_MERGE_S = 1e-3
_SPANS_EVERY_S = 1.0
#: :func:`qshpc.cache.jobcache.provenance`, once a hit was recorded.
_provenance: Any = None


class Session:
    """Rank 0's view of the running job.

    Args:
        job_dir: The job directory (None for plain ``python program.py``).
        writer: The store writer (None without a store).
        arguments: The program's arguments.
        done: Results already stored by an earlier run (key -> record), for resume.
        cache: The result cache as this job uses it (None: no task is cached).
    """

    def __init__(
        self,
        job_dir: Path | None,
        writer: JobWriter | None,
        arguments: dict[str, Any],
        done: dict[str, TaskRecord] | None = None,
        cache: JobCache | None = None,
    ) -> None:
        self.job_dir = job_dir
        self.writer = writer
        self.arguments = arguments
        self.done = done or {}
        self.cache = cache
        self.skipped = 0
        self.redone = 0  # stored, but not exactly: run again (done_result)
        self.cached = 0  # results taken from the result cache
        self.executed = 0
        self.failed = 0
        self.result_saved = False
        self.result: Any = None
        self._lock = threading.RLock()
        self._pending = 0
        self._last_commit = time.monotonic()
        self._last_dir_check = time.monotonic()
        self._last_checkpoint = self._last_commit
        #: A task result over this many bytes encoded stays only in the store (:meth:`held`).
        self.memory_max = settings.RESULT_MEMORY_MAX.get() if writer is not None else 1 << 62
        #: Results under it rank 0 holds in memory, in all, at most (:meth:`hold`).
        self.memory_total = settings.RESULT_MEMORY_TOTAL.get() if writer is not None else 1 << 62
        self._held = 0
        self._held_lock = threading.RLock()  # (a reference freed inside: its finalizer)
        self._checkpoint_min = settings.CHECKPOINT_S.get()
        self._checkpoint_every = self._checkpoint_min
        self._spans: list[list[float]] = []
        self._program_t0: float | None = None
        #: Tasks the program submitted so far (the progress shown against them).
        self.submitted = 0
        self._written_submitted = 0

    # -- resume ------------------------------------------------------------
    def done_result(self, key: str) -> tuple[Any] | None:
        """Return ``(result,)`` when a task with this key is already stored.

        None as well when the stored result is not exactly what the task returned
        (its record's provenance says so, :data:`qshpc.store.records.INEXACT`: a
        ``defaultdict`` stored as a dict): the task runs again (counted in
        :attr:`redone`), so the program gets what it got the first time. Records of a
        qshpc before session 23 never say so: their results are reused as before
        (what they lost cannot be told from the decoded value).
        """
        rec = self.done.get(key)
        if rec is None:
            return None
        if _INEXACT in rec.provenance:
            self.redone += 1
            return None
        value = rec.result
        if type(value) is InStore:  # left in the store by the resume: checked, not loaded
            try:
                value = self._reusable(value, rec.task_id, rec.function)
            except StoreError as exc:
                self.redone += 1
                _note_redone(rec.task_id, rec.function, exc)
                return None
        elif type(value) is DeferredResult:  # a class the program defines: decoded now
            try:
                value = value.load()
            except StoreError as exc:
                self.redone += 1
                _note_redone(rec.task_id, rec.function, exc)
                return None
            self.done[key] = replace(rec, result=value)
        self.skipped += 1
        return (value,)

    def _reusable(self, where: InStore, task_id: str, function: str) -> Stored:
        """A result the resume left in the store, as the program's call gets it: read back
        at each ``get`` (:meth:`in_store`), once checked now that it reads back whole (its
        bytes against the seal, and a value other than a lone array decoded: the program's
        classes are defined by now), so a store damaged since the resume began runs the
        call again instead of failing its ``get`` (StoreError)."""
        from qshpc.store.readback import check_value

        writer = self.writer
        assert writer is not None
        try:
            with self._lock:
                src = writer.large_source(where.off, where.n)
            try:
                check_value(src, where.n)
            finally:
                src.close()
        except (StoreError, MemoryError):
            raise
        except Exception as exc:  # a read through the seal (OSError), a decode
            raise StoreError(str(exc)) from exc
        return self.in_store(where.off, where.n, task_id, function)

    # -- results left in the store ----------------------------------------------
    def in_store(self, off: int, n: int, task_id: str, function: str) -> Stored:
        """A task result rank 0 keeps only in the store: the ``n`` committed bytes at ``off``
        of the log's large stream, read back and decoded at each load (``get``).

        Its load raises :class:`~qshpc.errors.StoreError` naming the task and the job
        when the bytes cannot be read or decoded (the store damaged since).
        """
        writer = self.writer
        assert writer is not None

        def load() -> Any:
            from qshpc.store.readback import read_value

            try:
                with self._lock:  # not while a commit or a checkpoint changes the files
                    src = writer.large_source(off, n)
                try:
                    return read_value(src, n)
                finally:
                    src.close()
            except MemoryError:
                raise
            except Exception as exc:
                raise self._unreadable(task_id, function, n, exc) from exc

        return Stored(load)

    def _unreadable(self, task_id: str, function: str, n: int, exc: BaseException) -> StoreError:
        job = self.job_dir.name if self.job_dir is not None else "?"
        return StoreError(
            f"cannot read back the result of task {task_id} ({function}) of job {job} from "
            f"its store: {exc}. Rank 0 keeps a result over QSHPC_RESULT_MEMORY_MAX bytes "
            f"(this one: {n}) only in the store once written, and the store was changed or "
            "damaged since. Run the job again; to keep such results in memory, set "
            f"QSHPC_RESULT_MEMORY_MAX above {n}"
        )

    # -- task records -------------------------------------------------------
    def record(
        self,
        out: Outcome,
        key: str,
        submitted: float,
        seed: int | None,
        rank: int | None = None,
        host: str | None = None,
    ) -> tuple[Outcome, tuple[int, int, int] | None]:
        """Store one attempt's outcome (buffered; durable at the next :meth:`sync`).

        Returns:
            The outcome as stored: one whose value cannot be stored is a failure
            (``SerializationError`` naming the task), as a worker reports it; and where
            the store puts its result (for :meth:`held`), None for a failure.
        """
        info = context.rank_info()
        rank = info.rank if rank is None else rank
        host = info.host if host is None else host
        try:
            where = self._record(out, key, submitted, seed, rank, host)
        except SerializationError as exc:
            if not out.ok:
                raise
            out = unsendable(out, exc)
            where = self._record(out, key, submitted, seed, rank, host)
        return out, where

    def hold(self, ref: Any, n: int) -> bool:
        """May rank 0 hold in memory a result of ``n`` encoded bytes, for the reference
        ``ref``? True (counted until ``ref`` is gone) while the results it holds so stay
        within ``QSHPC_RESULT_MEMORY_TOTAL`` bytes in all; else it is to stay in the store
        (:meth:`in_store`). Without a bound, 2000 results of 1 MiB the program kept
        references to took 2 GB on rank 0 (session 26's closing note)."""
        with self._held_lock:
            if self._held + n > self.memory_total:
                return False
            self._held += n
        weakref.finalize(ref, self._unhold, n).atexit = False
        return True

    def _unhold(self, n: int) -> None:
        with self._held_lock:
            self._held -= n

    def held(self, out: Outcome, where: tuple[int, int, int] | None, ref: Any = None) -> Any:
        """What rank 0 holds for the successful outcome ``out`` it recorded (``where``: from
        :meth:`record`): its value, or for a result over ``QSHPC_RESULT_MEMORY_MAX``
        bytes in the store, or one past ``QSHPC_RESULT_MEMORY_TOTAL`` (:meth:`hold`, for
        ``ref``), the store's copy (:meth:`in_store`), once durable (synced now)."""
        if where is None or where[0] != _WHERE_LARGE:
            return out.value
        if where[2] <= self.memory_max and (
            ref is None or where[2] <= _HOLD_MIN or self.hold(ref, where[2])
        ):
            return out.value
        self.sync()
        return self.in_store(where[1], where[2], out.task_id, out.function)

    def _record(
        self, out: Outcome, key: str, submitted: float, seed: int | None, rank: int, host: str
    ) -> tuple[int, int, int] | None:
        return self.record_fields(
            out.task_id, key, out.function, out.ok, out.value, out.error, out.attempt, rank,
            host, submitted, out.started, out.finished, seed, out.provenance,
        )  # fmt: skip

    def record_fields(
        self,
        task_id: str,
        key: str,
        function: str,
        ok: bool,
        value: Any,
        error: str | None,
        attempt: int,
        rank: int,
        host: str,
        submitted: float,
        started: float,
        finished: float,
        seed: int | None,
        provenance: dict[str, Any],
        cached: bool = False,
        encoded: bytes | None = None,
    ) -> tuple[int, int, int] | None:
        """:meth:`record` without an :class:`Outcome` (the dispatcher's hot path); where
        the store puts the result (:meth:`qshpc.store.writer.JobWriter.append_task`).

        Raises:
            SerializationError: ``value`` cannot be stored (nothing is recorded).
        """
        writer = self.writer
        if writer is None:
            self._count(ok, cached)
            return None
        rec = _TaskRecord(
            task_id,
            key,
            function,
            "SUCCEEDED" if ok else "FAILED",
            attempt,
            rank,
            host,
            submitted,
            started,
            finished,
            seed,
            value if ok else None,
            error,
            provenance,
            encoded if ok else None,
        )
        with self._lock:
            where = writer.append_task(rec)  # encodes the value first: it may refuse it
            self._count(ok, cached)
            self._pending += 1
            self._maybe_commit_locked()
        return where

    def _count(self, ok: bool, cached: bool) -> None:
        if cached:
            self.cached += 1
        elif ok:
            self.executed += 1
        else:
            self.failed += 1

    def record_hit(
        self, task_id: str, key: str, function: str, hit: Hit, submitted: float, seed: int | None
    ) -> None:
        """Store a result taken from the cache as this job's task record.

        A record like any other (rank 0, started and finished now), whose
        provenance names the job and task that computed it (``{"cache": {...}}``).
        """
        global _provenance
        if _provenance is None:  # once: an import at each hit costs it ~0.7 us
            from qshpc.cache.jobcache import provenance

            _provenance = provenance
        info = context.rank_info()
        now = time.time()
        writer = self.writer
        if writer is None or hit.blob is None:  # no store; or a result to encode (may fail)
            self.record_fields(
                task_id, key, function, True, hit.value, None, 1, info.rank, info.host,
                submitted, now, now, seed, _provenance(hit), cached=True, encoded=hit.blob,
            )  # fmt: skip
            return
        # The record record_fields makes of it, byte for byte, without its general steps
        # (perf19: a TaskRecord, the provenance made JSON-able again, ~4 us a hit).
        with self._lock:
            writer.append_hit(
                task_id, key, function, info.rank, info.host, submitted, now, seed,
                _provenance(hit), hit.blob,
            )  # fmt: skip
            self.cached += 1
            self._pending += 1
            self._maybe_commit_locked()

    def record_chunk(self, chunk: RecordChunk, ok: int, failed: int) -> None:
        """Store records a worker encoded (``ok`` and ``failed`` of them); as :meth:`record`."""
        self.executed += ok
        self.failed += failed
        if self.writer is None:
            return
        with self._lock:
            self.writer.append_chunk(chunk)
            self._pending += ok + failed
            self._maybe_commit_locked()

    def _maybe_commit_locked(self) -> None:
        if (
            self._pending >= _COMMIT_EVERY_N
            or time.monotonic() - self._last_commit > _COMMIT_EVERY_S
        ):
            self._commit_locked()

    def sync(self, force: bool = False) -> None:
        """Make every recorded outcome durable (called before results reach the program).

        Rank 0's spans and its count of submitted tasks ride along with the next
        commit; alone, they are written at most once a second, or now with ``force``.

        Raises:
            StoreError: In the program's thread, when the job directory was removed
                while the job ran (checked at most once a second).
        """
        if self.job_dir is not None and threading.current_thread() is threading.main_thread():
            self._check_dir()
            from qshpc.store.space import lost_output

            full = lost_output()
            if full is not None:
                from qshpc.errors import StoreError

                raise StoreError(full)
        if self.writer is None:
            return
        news = self._spans or self.submitted != self._written_submitted
        if not self._pending and not (
            news and (force or time.monotonic() - self._last_commit > _SPANS_EVERY_S)
        ):
            return
        with self._lock:
            self._commit_locked()

    # -- rank 0's program and its waits ------------------------------------------
    def note_wait(self, kind: int, t0: float, t1: float, n: int) -> None:
        """Record that the program waited from ``t0`` to ``t1`` for ``n`` tasks (no I/O).

        A wait that starts within a millisecond of the last one of its kind extends it,
        so a loop of one ``get`` per task stays a few rows.
        """
        if self.writer is None:
            return
        with self._lock:
            last = self._spans[-1] if self._spans else None
            if last is not None and last[2] == kind and t0 - last[1] < _SPAN_MERGE_S:
                last[1] = t1
                last[3] += n
            else:
                self._spans.append([t0, t1, kind, n])

    def program_started(self) -> None:
        """Record that the program starts now (its end is not known yet: NaN)."""
        self._program_t0 = time.time()
        if self.writer is not None:
            with self._lock:
                self._spans.append([self._program_t0, float("nan"), SPAN_PROGRAM, 0])

    def program_ended(self) -> None:
        """Record that the program returned (or raised) now."""
        t0 = self._program_t0
        if self.writer is not None and t0 is not None:
            with self._lock:
                self._spans.append([t0, time.time(), SPAN_PROGRAM, 0])

    def _check_dir(self) -> None:
        now = time.monotonic()
        if now - self._last_dir_check < 1.0:
            return
        self._last_dir_check = now
        assert self.job_dir is not None
        if not (self.job_dir / "job.h5").is_file():
            from qshpc.errors import StoreError

            raise StoreError(
                f"the job directory {self.job_dir} was removed while the job ran: "
                "its results cannot be stored; run the job again"
            )

    def _commit_locked(self) -> None:
        assert self.writer is not None
        spans, submitted = self._spans, self.submitted
        news = bool(spans) or submitted != self._written_submitted
        if news:
            self._spans = []
            self.writer.add_spans(spans, submitted)
            self._written_submitted = submitted
        if self._pending or news:
            self.writer.commit()
        self._pending = 0
        now = time.monotonic()
        self._last_commit = now
        if now - self._last_checkpoint > self._checkpoint_every:
            self._checkpoint_locked(now)

    def _checkpoint_locked(self, now: float) -> None:
        """Fold the journal into job.h5 now and then, so the file alone stays near current.

        The fold copies the file, so its interval grows with the file: at least
        ``QSHPC_CHECKPOINT_S`` (30 s), and 20 times an estimated copy time.
        """
        assert self.writer is not None
        self._last_checkpoint = now
        if not self.writer.journal_bytes():
            return
        self.writer.checkpoint()
        took = time.monotonic() - now
        self._checkpoint_every = max(self._checkpoint_min, 20 * took)

    # -- program API -----------------------------------------------------------
    def save_result(self, value: Any) -> None:
        """Store the program's result now (durable when this returns)."""
        with self._lock:
            self.result = value
            self.result_saved = True
            if self.writer is not None:
                self.writer.save_result(value)
                self._commit_locked()

    def update_status(self, text: str) -> None:
        """Set the job's sub-status shown beside RUNNING."""
        if self.writer is not None:
            with self._lock:
                self.writer.set_status(text)
                self._commit_locked()


_REDONE_NOTED: set[str] = set()


def _note_redone(task_id: str, function: str, exc: BaseException) -> None:
    """One line, once per function: a stored result that cannot be read back now runs again."""
    import sys

    if function in _REDONE_NOTED:
        return
    _REDONE_NOTED.add(function)
    print(
        f"qshpc: note: the stored result of task {task_id} ({function}) cannot be read back "
        f"({exc}); its calls run again",
        file=sys.stderr,
        flush=True,
    )
