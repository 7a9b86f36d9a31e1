"""Reading a job file, while it runs or after it ended."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from qshpc.errors import (
    DamagedStoreError,
    NoResultError,
    QshpcError,
    SchemaVersionError,
    StoreError,
    TaskError,
)
from qshpc.store import layout as L
from qshpc.store.encoding_blob import array_head, decode_blob
from qshpc.store.encoding_h5 import read_native
from qshpc.store.isolate import Child, UnreadableStoreError
from qshpc.store.journal import PinnedJournal, check_large
from qshpc.store.log import LogReader, journal_error, journal_frames
from qshpc.store.nesting import read_deep
from qshpc.store.records import SCHEMA_VERSION, STATES, TASK_STATES, TaskRecord
from qshpc.store.table import TaskTable


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def _pin(jpath: Path) -> PinnedJournal | None:
    """The journal at ``jpath`` opened (None: there is none)."""
    try:
        return PinnedJournal(jpath)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise journal_error(jpath, exc) from exc


F = TypeVar("F", bound=Callable[..., Any])


#: Bytes a read of :meth:`JobReader.check_result` takes at most (of an array: whole rows).
_CHECK_READ = 1 << 22


def _guarded(method: F) -> F:
    """Turn any failure of a read into a StoreError; a DamagedStoreError when bytes were damaged."""

    @functools.wraps(method)
    def wrapper(self: JobReader, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DamagedStoreError:
            raise
        except (QshpcError, Exception) as exc:
            bad = L.damage_of(self._f)
            if bad:
                raise DamagedStoreError(self.path, bad) from None
            if isinstance(exc, QshpcError):
                raise
            what = method.__name__.strip("_")
            raise StoreError(f"cannot read the {what} of {self.path}: {exc!r}") from exc

    return wrapper  # type: ignore[return-value]


class JobReader:
    """Read-only view of a job: ``job.h5`` plus the running writer's journal.

    Safe while the writer runs, after it was killed, and while it replaces
    ``job.h5`` (the reader reopens the new file).

    Use as a context manager, or call :meth:`close`. Each method reads what is
    committed at the time of the call.
    """

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path = path
        self._f = f
        self._ino = os.stat(path).st_ino
        self._cached: tuple[tuple[int, int], TaskTable] | None = None

    @classmethod
    def open(cls, job_dir: str | os.PathLike[str]) -> JobReader:
        """Open ``job_dir/job.h5``.

        Raises:
            JobNotFoundError: When ``job_dir`` does not exist.
            StoreError: When the file is missing, truncated or not a job store.
            SchemaVersionError: When it has a schema version this qshpc cannot read.
        """
        job_dir = Path(job_dir)
        path = L.job_file(job_dir)
        for _ in range(20):
            ino = _inode(path)
            try:
                f = L.open_read(path)
            except L.UnsealedError:
                return IsolatedReader(path)
            except L.SealGoneError:
                from qshpc.store.isolate import check_schema

                try:
                    check_schema(path)  # another version's file, edited in place: say that
                except SchemaVersionError:
                    raise
                except StoreError:
                    pass
                raise
            if _inode(path) == ino:
                reader = cls(path, f)
                reader._ino = ino
                return reader
            L.close_read(f)  # replaced while we opened it: open the new one
        raise StoreError(f"{path} keeps being replaced; try again")

    @classmethod
    def open_plain(cls, path: Path) -> JobReader:
        """Open ``path`` even without a seal (only in the isolated reader's child process)."""
        return cls(path, L.open_read(path, plain=True))

    def __enter__(self) -> JobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        L.close_read(self._f)

    def _log(self, strict: bool = True) -> LogReader:
        """The log of the open ``job.h5`` and of the journal beside it, that journal
        opened once (:class:`~qshpc.store.journal.PinnedJournal`): a fold that replaces
        both meanwhile changes nothing this log reads."""
        for _ in range(20):
            if _inode(self.path) != self._ino:  # the writer folded its journal in
                L.close_read(self._f)
                self._ino = _inode(self.path)
                self._f = L.open_read(self.path, plain=self._plain())
            pinned = _pin(self._jpath())
            if _inode(self.path) != self._ino:  # folded just now: that journal may be the next
                continue
            frames = journal_frames(self._f, self.path, strict, pinned) if pinned else []
            return LogReader(self._f, str(self.path), frames, self._jpath(), pinned)
        raise StoreError(f"{self.path} keeps being replaced; try again")

    def _plain(self) -> bool:
        return getattr(self._f, "_qshpc_vf", None) is None

    def _jpath(self) -> Path:
        return self.path.with_name(L.JOURNAL_FILE)

    def _native(self, name: str, allow_pickle: bool) -> Any:
        try:
            return read_native(self._f[name], allow_pickle, str(self.path))
        except (QshpcError, RecursionError):
            raise
        except Exception as exc:
            bad = L.damage_of(self._f)
            if bad:
                raise DamagedStoreError(self.path, bad) from None
            raise StoreError(f"cannot read /{name} of {self.path}: {exc}") from exc

    @_guarded
    def meta(self) -> dict[str, Any]:
        """create_job's meta plus state, sub_status, error, times, runs, ranks and counts.

        ``tasks_submitted`` is how many tasks the program had submitted when rank 0
        last wrote it (None for jobs of a qshpc that did not record it).
        ``task_counts`` counts tasks by the state of their latest attempt;
        ``tasks_stopped`` how many of its FAILED ones were stopped unfinished when
        the job ended (``TaskAbandoned``: a cancel, or a program that no longer
        waited for them), not failures of their code. ``tasks_this_run``: of a
        resumed job (``runs`` over 1), the tasks that ended in its latest run
        (the others it reused from the store); None for a job run once.
        """
        out: dict[str, Any] = self._native(L.META_GROUP, False)
        log = self._log()
        state, error, sub_status, finished = STATES[0], None, "", None
        has_result = L.RESULT in self._f or bool(self._saved(log))
        last_spans = None
        for ev in log.events():
            kind = int(ev["kind"])
            if kind == L.EVENT_SPANS:
                last_spans = ev
            if kind not in (L.EVENT_STATE, L.EVENT_STATUS):
                continue
            value = decode_blob(log.blob(int(ev["where"]), int(ev["off"]), int(ev["len"])))
            if kind == L.EVENT_STATE:
                state, error = value
                finished = float(ev["time"]) if state not in STATES[:2] else None
            elif kind == L.EVENT_STATUS:
                sub_status = value
        submitted = None
        if last_spans is not None:  # the program's count of submitted tasks, as last written
            raw = log.blob(int(last_spans["where"]), int(last_spans["off"]), int(last_spans["len"]))
            value = decode_blob(raw)
            submitted = value.get("submitted") if isinstance(value, dict) else None
        runs = self._runs()
        table = self._table(log)
        counts = table.latest_counts()
        from_cache = table.latest_from_cache()
        stopped = table.latest_stopped()
        last = runs[-1] if runs else {}
        out.update(
            state=state,
            sub_status=sub_status,
            error=error,
            started=runs[0].get("started") if runs else None,
            last_started=last.get("started"),
            finished=finished,
            runs=len(runs),
            mpi_size=last.get("mpi_size"),
            ranks=list(last.get("ranks") or []),
            has_result=has_result,
            task_counts=counts,
            records=len(table),
            tasks_submitted=submitted,
            tasks_from_cache=from_cache,
            tasks_stopped=stopped,
            tasks_this_run=table.finished_in_run(len(runs)) if len(runs) > 1 else None,
            schema_version=SCHEMA_VERSION,
            launch=last.get("launch"),
        )
        return out

    def _saved(self, log: LogReader) -> list[Any]:
        """Result events of the latest run (a resumed run starts without a result)."""
        run = len(self._f[L.RUNS]) if L.RUNS in self._f else 0
        events = log.events()
        return [ev for ev in events if int(ev["kind"]) == L.EVENT_RESULT and ev["run"] == run]

    def runs(self) -> list[dict[str, Any]]:
        """The runtime dict of every start of the job (ranks, hosts, started, versions, slurm)."""
        return self._runs()

    def _runs(self) -> list[dict[str, Any]]:
        if L.RUNS not in self._f:
            return []
        g = self._f[L.RUNS]
        return [read_native(g[k], False, str(self.path)) for k in sorted(g, key=lambda k: int(k))]

    @_guarded
    def spans(self) -> np.ndarray[Any, Any]:
        """Rank 0's program and its waits in ``get``/``wait``, as rows ``run, t0, t1, kind, n``.

        ``kind`` is ``SPAN_GET`` (0), ``SPAN_WAIT`` (1) or ``SPAN_PROGRAM`` (2); a
        program row whose ``t1`` is NaN was still running when it was written
        (the row written at its end follows). ``n`` counts the task references
        waited for. Waits under a millisecond apart are stored as one. Empty
        (0 rows) for jobs of a qshpc that did not record them.
        """
        log = self._log()
        rows: list[list[float]] = []
        for ev in log.events():
            if int(ev["kind"]) != L.EVENT_SPANS:
                continue
            value = decode_blob(log.blob(int(ev["where"]), int(ev["off"]), int(ev["len"])))
            spans = value.get("spans", []) if isinstance(value, dict) else []
            rows += [[float(ev["run"]), *map(float, row[:4])] for row in spans]
        return np.array(rows, dtype=np.float64).reshape(-1, 5)

    def verify(self) -> None:
        """Check every byte of the job against its seal and checksums (reads all of it).

        Readers otherwise check only the blocks they read: ``qshpc status --verify``
        calls this so that damage anywhere (a saved result it does not read) is found,
        and plain ``qshpc status`` for a store of up to ``QSHPC_STATUS_VERIFY_MAX`` bytes;
        not for a bigger one (review38 F16: 0.6 s/GB, minutes for a 100 GB store).
        ``result``, ``task_result`` and a resume's copy of the store
        (:func:`qshpc.store.seal.copy_verified`) check what they read. Memory stays
        small: the file and the journal's large parts are read 4 MiB at a time.

        Raises:
            DamagedStoreError: Naming the damaged bytes.
        """
        vf = getattr(self._f, "_qshpc_vf", None)
        if vf is not None:
            from qshpc.store.seal import damaged_blocks, read_seal

            whole = read_seal(vf._fd, os.fstat(vf._fd).st_size)  # the table's own CRC too
            if whole is None:
                raise DamagedStoreError(
                    self.path, "its integrity seal's table of checksums is damaged"
                )
            bad = damaged_blocks(vf._fd, whole)
            if bad:
                ranges = ", ".join(f"{a}-{b}" for a, b in bad[:5])
                more = f" and {len(bad) - 5} more blocks" if len(bad) > 5 else ""
                vf.bad.update(a // vf._seal.block for a, _ in bad)
                raise DamagedStoreError(
                    self.path, f"bytes {ranges}{more} do not match its integrity seal"
                )
        log = self._log()  # its journal pinned: the one whose frames are checked (review49 F1)
        for jf in log.frames:
            if jf.large_lens:
                check_large(self._jpath(), jf, log.journal_fd())

    @_guarded
    def arguments(self, allow_pickle: bool = False) -> dict[str, Any]:
        """The job's arguments (pickled values refused unless ``allow_pickle``)."""
        value: dict[str, Any] = self._native(L.ARGUMENTS, allow_pickle)
        return value

    @_guarded
    def tasks(self) -> list[dict[str, Any]]:
        """One dict per committed task record (all attempts), without result values."""
        return self._table(self._log()).rows()

    def task_table(self) -> TaskTable:
        """Every committed task record (all attempts) as columns, without result values."""
        return self._table(self._log())

    def _table(self, log: LogReader) -> TaskTable:
        """The table of ``log``, decoded once per commit seen (records are only appended)."""
        rows = log.ends.records + sum(len(jf.frame.records) for jf in log.frames)
        key = (self._ino, rows)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, log.task_table())
        return self._cached[1]

    @_guarded
    def task_result(self, task_id: str, allow_pickle: bool = False) -> Any:
        """The result of the latest record of ``task_id``.

        Raises:
            StoreError: When no record of ``task_id`` is committed.
            TaskError: When its latest record is FAILED.
        """
        log = self._log()
        found: tuple[dict[str, Any], Any] | None = None
        for row in log.records():
            fields = log.record_fields(row)
            # a SUCCEEDED record wins; else the latest (review52 F6: attempt 1's error was
            # raised when every attempt failed)
            if fields["task_id"] == task_id and (
                found is None or int(row["state"]) == 0 or int(found[1]["state"]) != 0
            ):
                found = (fields, row)
        if found is None:
            raise StoreError(f"no record of task {task_id} in {self.path}")
        fields, row = found
        if fields["state"] != TASK_STATES[0]:
            raise TaskError(task_id, fields["function"], fields["rank"], fields["host"],
                            fields["error"] or "", attempts=fields["attempt"])  # fmt: skip
        return log.record_result(row, allow_pickle)

    def done_records(
        self,
        allow_pickle: bool = False,
        defer: bool = False,
        lazy_over: int | None = None,
        hold: int | None = None,
    ) -> dict[str, TaskRecord]:
        """Key -> latest SUCCEEDED record, results loaded (``defer``, ``lazy_over``,
        ``hold``: see :meth:`qshpc.store.log.LogReader.done_records`; ``defer`` is a
        resume's read: damage found is said with what is readable and the way on,
        :func:`resume_refused`)."""
        try:
            return self._done_records(allow_pickle, defer, lazy_over, hold)
        except DamagedStoreError as exc:
            if not defer:
                raise
            raise resume_refused(self.path.parent, exc) from None

    @_guarded
    def _done_records(
        self, allow_pickle: bool, defer: bool, lazy_over: int | None, hold: int | None
    ) -> dict[str, TaskRecord]:
        return self._log().done_records(allow_pickle, defer, lazy_over, hold)

    @_guarded
    def result(self, allow_pickle: bool = False) -> Any:
        """The saved result: ``/result`` when finalized, else the latest run's last saved blob.

        Raises:
            NoResultError: When the job saved no result.
        """
        if L.RESULT in self._f:
            # read_deep: one an older qshpc stored 450-1000 levels deep (review38 F2)
            return read_deep(lambda: self._native(L.RESULT, allow_pickle))
        log = self._log()
        saved = self._saved(log)
        if not saved:
            raise NoResultError(f"job {self.path.parent} has no saved result")
        ev = saved[-1]
        raw = log.blob_buffer(int(ev["where"]), int(ev["off"]), int(ev["len"]))
        return read_deep(lambda: decode_blob(raw, allow_pickle, str(self.path)))

    @_guarded
    def result_peek(self) -> tuple[int, str | None] | None:
        """The saved result's stored size in bytes, and for a result that is one numpy array
        its ``dtype shape`` (else None), read without loading it; None: no saved result.

        review38 F13: ``qshpc report`` loaded a 500 MB array (1.6 GB) to learn it was not
        plottable.
        """
        if L.RESULT in self._f:
            node = self._f[L.RESULT]
            if isinstance(node, h5py.Dataset):
                enc = node.attrs.get(L.ENC_TYPE, "")
                enc = enc.decode() if isinstance(enc, bytes) else str(enc)
                shown = f"{node.dtype} {node.shape}" if enc == "array" else None
                return int(node.id.get_storage_size()), shown
            sizes: list[int] = []
            node.visititems(
                lambda _, o: sizes.append(o.id.get_storage_size())
                if isinstance(o, h5py.Dataset) else None
            )  # fmt: skip
            return sum(sizes), None
        log = self._log()
        saved = self._saved(log)
        if not saved:
            return None
        ev = saved[-1]
        where, off, n = int(ev["where"]), int(ev["off"]), int(ev["len"])
        return n, array_head(log.blob_head(where, off, n, 4096), n)

    @_guarded
    def check_result(self) -> None:
        """Read the saved result's bytes, 4 MiB at a time, without decoding them: the
        reads check them against the seal and checksums as :meth:`result`'s do. For a
        resume of a SUCCEEDED job whose store is too big for :meth:`verify` (fixR left:
        it said "nothing to resume (`qshpc result J`)" without reading the result).

        Raises:
            DamagedStoreError: Naming the damaged bytes.
        """
        if L.RESULT in self._f:
            node = self._f[L.RESULT]
            found: list[h5py.Dataset] = [node] if isinstance(node, h5py.Dataset) else []
            if not found:
                node.visititems(
                    lambda _, o: found.append(o) if isinstance(o, h5py.Dataset) else None
                )
            for ds in found:
                if ds.shape is None:  # (an empty value: no data)
                    continue
                if not ds.shape or not ds.size:
                    ds[()]
                    continue
                row = max(1, ds.size // ds.shape[0] * ds.dtype.itemsize)
                step = max(1, _CHECK_READ // row)
                for at in range(0, ds.shape[0], step):
                    ds[at : at + step]
            return
        log = self._log()
        saved = self._saved(log)
        if not saved:
            return
        ev = saved[-1]
        where, off, n = int(ev["where"]), int(ev["off"]), int(ev["len"])
        if where == L.WHERE_LARGE and off >= log.ends.large:  # in a journal frame: streamed
            log.blob_head(where, off, n, 1)
            return
        for at in range(0, n, _CHECK_READ):
            log.blob(where, off + at, min(_CHECK_READ, n - at))

    def recoverable(self, deep: bool = True) -> dict[str, Any]:
        """What of a damaged job can still be read, each part tried on its own.

        ``deep``: also read every task result and the saved result (their bytes
        are checked against the seal; a file without one is decoded too). Off,
        only the meta, arguments and the task log are tried (``qshpc list``).

        Returns:
            ``meta`` (create_job's dict, or None), ``arguments`` (bool),
            ``runs`` (count or None), ``results`` ``[readable, total]`` task
            results (None when the log is unreadable), ``result`` ("readable",
            "unreadable", "none", or "unknown": ``job.h5``'s events cannot be read and
            the journal has none), ``unread_records`` (when some records' meta cannot be
            read: how many of them SUCCEEDED and how many not), ``damage`` (what is damaged), and
            ``summary``, one line saying all of it.
        """
        from qshpc.store.encoding_blob import PickleRefusedError

        out: dict[str, Any] = {"damage": None}

        def attempt(fn: Callable[[], Any]) -> tuple[bool, Any]:
            try:
                return True, fn()
            except PickleRefusedError:
                return True, None  # the bytes are intact: only loading them needs trust
            except Exception as exc:  # each part alone: one damaged part must not hide the rest
                if out["damage"] is None:
                    out["damage"] = L.damage_of(self._f) or str(exc)
                return False, None

        ok, meta = attempt(lambda: self._native(L.META_GROUP, False))
        out["meta"] = meta if ok and isinstance(meta, dict) else None
        out["arguments"] = attempt(lambda: self._native(L.ARGUMENTS, False))[0]
        ok, runs = attempt(self._runs)
        out["runs"] = len(runs) if ok else None
        try:
            self._log()
        except DamagedStoreError as exc:
            out["damage"] = str(exc)  # the journal: what comes before the damage is readable
        except Exception:
            pass
        ok, log = attempt(lambda: self._log(strict=False))
        out["results"] = None
        if ok:
            ok, rows = attempt(log.records)
            if ok:
                latest: dict[str, Any] = {}
                unread = [0, 0]  # records whose meta cannot be read: SUCCEEDED, FAILED (F13)
                for row in rows:
                    good, fields = attempt(functools.partial(log.record_fields, row))
                    if not good:
                        unread[int(row["state"]) != 0] += 1
                    elif int(row["state"]) == 0:
                        latest[fields["key"]] = row
                if any(unread):
                    out["unread_records"] = unread
                if deep:
                    check = log.record_result if self._plain() else _result_bytes(log)
                    readable = sum(
                        attempt(functools.partial(check, row, False))[0] for row in latest.values()
                    )
                    out["results"] = [readable, len(latest)]
                else:
                    out["results"] = [None, len(latest)]
        if out["results"] is None:  # review55 R1: the journal read alone
            from qshpc.store.salvage import journal_alone

            found = journal_alone(self.path.parent, self._f, deep)
            if found is not None and found["whose"] != "foreign":
                out["journal"] = found
        if not deep:
            out["result"] = "unchecked"
            out["summary"] = summary_line(out)
            return out
        has = attempt(lambda: L.RESULT in self._f or bool(self._saved(self._log(strict=False))))
        if not has[0]:
            out["result"] = self._journal_result(out["runs"])
        elif not has[1]:
            out["result"] = "none"
        else:
            out["result"] = "readable" if attempt(lambda: self.result(False))[0] else "unreadable"
        out["summary"] = summary_line(out)
        return out

    def _journal_result(self, runs: int | None) -> str:
        """``recoverable``'s word on the saved result when ``job.h5``'s events cannot be
        read: the journal's own result event, read from its frame; "unknown" when the
        journal has none (review52 F9: a job that never saved a result was said to have
        lost it)."""
        try:
            log = self._log(strict=False)
            saved = [
                ev
                for jf in log.frames
                for ev in jf.frame.events
                if ev["valid"] == 1 and int(ev["kind"]) == L.EVENT_RESULT
                and (runs is None or int(ev["run"]) == runs)
            ]  # fmt: skip
        except Exception:
            return "unknown"  # neither job.h5's events nor the journal's read (review55 R1)
        if not saved:
            return "unknown"
        ev = saved[-1]
        try:
            decode_blob(log.blob_buffer(int(ev["where"]), int(ev["off"]), int(ev["len"])))
        except Exception as exc:
            from qshpc.store.encoding_blob import PickleRefusedError

            return "readable" if isinstance(exc, PickleRefusedError) else "unreadable"
        return "readable"


class IsolatedReader(JobReader):
    """:class:`JobReader` over a file without a seal: every call runs in a child, time-limited."""

    def __init__(self, path: Path, check: bool = True) -> None:  # no file of its own here
        self.path = path
        self._child: Child | None = None
        self._f = None
        if check:
            try:
                self._call("schema")  # open errors (another schema, not a store) at open time
            except BaseException:
                self.close()
                raise

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._child is None:
            self._child = Child(self.path, "job")
        try:
            return self._call_child(self._child, method, args, kwargs)
        except DamagedStoreError:
            self.close()
            raise

    @staticmethod
    def _call_child(child: Child, method: str, args: Any, kwargs: Any) -> Any:
        return child.call(method, args, kwargs)

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def meta(self) -> dict[str, Any]:
        value: dict[str, Any] = self._call("meta")
        return value

    def arguments(self, allow_pickle: bool = False) -> dict[str, Any]:
        value: dict[str, Any] = self._call("arguments", allow_pickle)
        return value

    def tasks(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self._call("tasks")
        return value

    def task_result(self, task_id: str, allow_pickle: bool = False) -> Any:
        return self._call("task_result", task_id, allow_pickle)

    def done_records(self, *args: Any, **kwargs: Any) -> Any:  # JobReader's (allow_pickle, ...)
        return self._call("done_records", *args, **kwargs)  # review52 F12: keywords were dropped

    def result(self, allow_pickle: bool = False) -> Any:
        return self._call("result", allow_pickle)

    def recoverable(self, deep: bool = True) -> dict[str, Any]:
        value: dict[str, Any] = self._call("recoverable", deep)
        return value

    def runs(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self._call("runs")
        return value

    def spans(self) -> np.ndarray[Any, Any]:
        value: np.ndarray[Any, Any] = self._call("spans")
        return value

    def task_table(self) -> TaskTable:
        value: TaskTable = self._call("task_table")
        return value

    def verify(self) -> None:
        """Nothing to check it against: a file without a seal reads as it is."""

    def check_result(self) -> None:
        """Nothing to check it against, as :meth:`verify`."""


def _result_bytes(log: LogReader) -> Callable[[Any, bool], bytes]:
    """Read a record's result bytes (checked against the seal on the way), without decoding."""

    def read(row: Any, allow_pickle: bool) -> bytes:
        where = int(row["where"])
        if where == L.WHERE_NONE:
            return b""
        return log.blob(where, int(row["res_off"]), int(row["res_len"]))

    return read


def summary_line(rec: dict[str, Any]) -> str:
    """``recoverable: ...; lost: ...`` for a :meth:`JobReader.recoverable` dict."""
    good: list[str] = []
    lost: list[str] = []
    (good if rec.get("meta") else lost).append("meta")
    (good if rec.get("arguments") else lost).append("arguments")
    results = rec.get("results")
    journal = rec.get("journal")
    if results is None and journal:  # review55 R1: job.h5's log unreadable, the journal read alone
        from qshpc.store.salvage import journal_line

        if journal["results"][1]:
            good.append(journal_line(journal))
        if journal["h5_records"]:
            lost.append(f"job.h5's {journal['h5_records']} task records")
        if journal["in_h5"]:
            lost.append(f"{journal['in_h5']} task results whose records lie in job.h5")
        if not journal["results"][1] and not journal["h5_records"] and not journal["in_h5"]:
            good.append("the task log (no results in it)")
    elif results is None:
        lost.append("the task records")
    elif results[0] is None:
        good.append(f"the log of {results[1]} task results (`qshpc status` checks them)")
    else:
        n, total = results
        if n:
            good.append(f"{n} of {total} task results")
        if n < total:
            lost.append(f"{total - n} task results")
        if not total and not any(rec.get("unread_records") or ()):
            good.append("the task log (no results in it)")
    done, failed = rec.get("unread_records") or (0, 0)
    if done:
        lost.append(f"{done} task results (their records cannot be read)")
    if failed:
        lost.append(f"{failed} records of failed attempts")
    result = rec.get("result")
    if result == "readable":
        good.append("the saved result")
    elif result == "unreadable":
        lost.append("the saved result")
    elif result == "unknown":
        lost.append("job.h5's events (a result saved before the journal's, if any)")
    text = f"recoverable: {', '.join(good) or 'nothing'}"
    if lost:
        text += f"; lost: {', '.join(lost)}"
    return text


def damaged_meta(job_dir: Path, exc: DamagedStoreError, deep: bool = True) -> dict[str, Any]:
    """The meta of a job whose store is damaged: state ``DAMAGED``, the error, what is recoverable.

    Whatever can still be read (the meta's id and title, counts of intact task
    results) is read the safe way: a sealed file checked block by block, any
    other file in a time-limited child process (then the parts are unverified).
    """

    path = L.job_file(Path(job_dir))
    rec: dict[str, Any] | None = None
    unverified = False
    reader: JobReader | None = None
    if not isinstance(exc, UnreadableStoreError):  # else it just ran out of time: do not again
        try:
            reader = JobReader.open(job_dir)
        except L.SealGoneError:
            reader, unverified = IsolatedReader(path, check=False), True
        except StoreError:
            reader = None
    if reader is not None:
        try:
            rec = reader.recoverable(deep)
        except SchemaVersionError:
            raise  # another qshpc's file (edited in place, so without its seal): say that
        except StoreError:
            rec = None
        finally:
            reader.close()
    if rec is None:  # job.h5 cannot be opened: its journal read alone (review55 R1)
        rec = _journal_alone_rec(Path(job_dir), deep)
    meta: dict[str, Any] = dict((rec or {}).get("meta") or {})
    meta.setdefault("id", Path(job_dir).name)
    summary = rec["summary"] if rec else "recoverable: nothing (no part of it could be read)"
    if unverified and rec:
        summary = summary.replace("recoverable:", "readable, but unverified (no seal):", 1)
    results = (rec or {}).get("results") or [0, 0]
    if results[0] is None:
        results = [0, results[1]]
    meta.update(
        state="DAMAGED",
        sub_status="",
        error=str(exc),
        recoverable=summary,
        damaged=True,
        task_counts={"SUCCEEDED": int(results[0]), "FAILED": 0},
        tasks_stopped=0,
        has_result=(rec or {}).get("result") == "readable",
        ranks=[],
    )
    journal = (rec or {}).get("journal")
    if journal and journal["results"][1]:
        meta["journal_results"] = int(journal["results"][1])  # review55 R1: unconfirmed ones
    return meta


def _journal_alone_rec(job_dir: Path, deep: bool) -> dict[str, Any] | None:
    """``recoverable``'s dict for a job whose ``job.h5`` cannot be opened, from its
    journal read alone; None when there is none (or it holds no commit)."""
    from qshpc.store.salvage import journal_alone

    try:
        found = journal_alone(job_dir, None, deep)
    except Exception:
        return None
    if found is None:
        return None
    rec: dict[str, Any] = {"meta": None, "arguments": False, "results": None, "journal": found}
    rec["result"] = "unknown" if deep else "unchecked"
    rec["summary"] = summary_line(rec)
    return rec


def resume_refused(job_dir: Path, exc: DamagedStoreError) -> DamagedStoreError:
    """``exc``, met by a resume (its read of the finished tasks or the job's meta, its copy
    of ``job.h5``), with what is readable and the way on: the one refusal of a resume
    over a damaged store (review49 F7: one damaged block refused the resume naming the
    bytes alone; review52 F5: it was written twice, and over a foreign journal it said
    both "mv it aside and --resume" and "do not --resume"). An error that names its own
    way on (:class:`~qshpc.store.journal.ForeignJournalError`) keeps it alone."""
    from qshpc.store.jobref import job_ref
    from qshpc.store.journal import ForeignJournalError

    alone = 0
    try:
        meta = damaged_meta(job_dir, exc)
        found, alone = str(meta["recoverable"]), int(meta.get("journal_results") or 0)
    except StoreError:
        found = "`qshpc status --verify` says what is readable"
    if isinstance(exc, ForeignJournalError):
        foreign = ForeignJournalError(exc.path, f"{exc.detail}; nothing was run ({found})")
        return _headed(job_dir, foreign)
    return _headed(
        job_dir,
        DamagedStoreError(
            exc.path,
            f"{exc.detail} ({found}); nothing was run. Run the program again as a new job "
            "(without --resume): a resume builds only on a whole store, and a new job runs "
            "every task again (with --cache, it reuses the results the cache holds). "
            f"`qshpc status --verify {job_ref(job_dir)}` lists what is readable; a readable task "
            "result is `JobReader.open(JOB_DIR).task_result(TASK_ID)` (from qshpc.store import "
            "JobReader: docs/store.md, 'Damaged files')"
            + (
                f"; the {alone} task results of job.journal, read alone, are "
                "`journal_records(JOB_DIR)` (from qshpc.store import journal_records)"
                if alone
                else ""
            ),
        ),
    )


def _headed(job_dir: Path, err: DamagedStoreError) -> DamagedStoreError:
    """``err`` whose text begins ``cannot resume job J:``, as every resume refusal does
    (review55 R3: with PROGRAM given, a damaged journal's refusal began with its path)."""
    err.args = (f"cannot resume job {job_dir.name}: {err}",)
    return err
