"""Reading files without an integrity seal in a child process, under a time limit.

A job file written by an older qshpc (or one whose seal was destroyed) cannot
be checked before HDF5 parses it, and HDF5 can loop forever or crash on
damaged bytes. So such files are read by a child process (``python -m
qshpc.store.isolate``) that runs :class:`~qshpc.store.reader.JobReader` on
them; the parent waits at most :func:`time_limit` seconds per call. A child
that does not answer in time is killed and the file reported damaged; one
that dies (a segfault in HDF5) is reported the same way. The child costs
about 0.2 s to start, once per opened reader.

Protocol on the child's stdin/stdout: 8-byte little-endian length, then a
pickle: requests ``(method, args, kwargs)``, answers ``("ok", value)`` or
``("err", exception)``. Only this module's own child is ever unpickled.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qshpc.errors import DamagedStoreError, QshpcError, SchemaVersionError, StoreError
from qshpc.store.reader import JobReader

_LEN = struct.Struct("<Q")
_METHODS = frozenset(
    {"meta", "arguments", "tasks", "task_result", "done_records", "result", "recoverable", "schema"}
)
_ARGUMENTS = "load_arguments"


def time_limit(path: Path) -> float:
    """Seconds one isolated call may take: ``QSHPC_READ_TIMEOUT_S`` (20) + 1 s per 50 MB."""
    try:
        base = float(os.environ.get("QSHPC_READ_TIMEOUT_S", "20"))
    except ValueError:
        base = 20.0
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return max(1.0, base) + size / 50e6


class UnreadableStoreError(DamagedStoreError):
    """Reading a file in the isolated child did not finish in time, or crashed the child."""


class _Child:
    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qshpc.store.isolate", target, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            close_fds=True,
        )

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        limit = time_limit(self.path)
        data = pickle.dumps((method, args, kwargs), protocol=5)
        try:
            self.proc.stdin.write(_LEN.pack(len(data)) + data)
            self.proc.stdin.flush()
            head = self._read(_LEN.size, time.monotonic() + limit, limit)
            body = self._read(_LEN.unpack(head)[0], time.monotonic() + limit, limit)
        except BrokenPipeError:
            raise self._died() from None
        status, value = pickle.loads(body)
        if status == "ok":
            return value
        raise value

    def _read(self, n: int, deadline: float, limit: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        parts: list[bytes] = []
        got = 0
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while got < n:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise UnreadableStoreError(
                        self.path,
                        f"reading it did not finish within {limit:.0f} s (HDF5 stalls on "
                        "damaged bytes; QSHPC_READ_TIMEOUT_S sets the limit)",
                    )
                chunk = os.read(fd, min(n - got, 1 << 20))
                if not chunk:
                    raise self._died()
                parts.append(chunk)
                got += len(chunk)
        return b"".join(parts)

    def _died(self) -> StoreError:
        code = self.proc.wait()
        self._err.seek(0)
        tail = self._err.read()[-400:].decode(errors="replace").strip()
        if code < 0:
            return UnreadableStoreError(
                self.path, f"reading it crashed the reader (signal {-code}): {tail}".rstrip(": ")
            )
        return StoreError(f"the reader of {self.path} exited with code {code}: {tail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._err.close()


class IsolatedReader(JobReader):
    """:class:`JobReader` over a file without a seal: every call runs in a child, time-limited."""

    def __init__(self, path: Path, check: bool = True) -> None:  # no file of its own here
        self.path = path
        self._child: _Child | None = None
        self._f = None
        if check:
            try:
                self._call("schema")  # open errors (another schema, not a store) at open time
            except BaseException:
                self.close()
                raise

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._child is None:
            self._child = _Child(self.path, "job")
        try:
            return self._call_child(self._child, method, args, kwargs)
        except DamagedStoreError:
            self.close()
            raise

    @staticmethod
    def _call_child(child: _Child, method: str, args: Any, kwargs: Any) -> Any:
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

    def done_records(self, allow_pickle: bool = False) -> Any:
        return self._call("done_records", allow_pickle)

    def result(self, allow_pickle: bool = False) -> Any:
        return self._call("result", allow_pickle)

    def recoverable(self) -> dict[str, Any]:
        value: dict[str, Any] = self._call("recoverable")
        return value

    def verify(self) -> None:
        """Nothing to check it against: a file without a seal reads as it is."""


def load_arguments(path: Path, allow_pickle: bool) -> dict[str, Any]:
    """:func:`qshpc.store.jobfile.load_arguments` of an unsealed .h5 file, in a time-limited child."""
    child = _Child(path, "arguments")
    try:
        value: dict[str, Any] = child.call(_ARGUMENTS, (allow_pickle,), {})
        return value
    finally:
        child.kill()


def check_schema(path: Path) -> None:
    """Open ``path`` in a time-limited child: raises what opening it raises (e.g. SchemaVersionError)."""
    child = _Child(path, "job")
    try:
        child.call("schema", (), {})
    finally:
        child.kill()


def probe(path: Path) -> None:
    """Read all of an unsealed job file in a time-limited child (before a writer builds on it).

    Raises:
        DamagedStoreError: When it cannot be read in full, or not in time.
    """
    child = _Child(path, "job")
    try:
        try:
            rec = child.call("recoverable", (), {})
        except (DamagedStoreError, SchemaVersionError):
            raise
        except StoreError as exc:
            raise DamagedStoreError(path, str(exc)) from None
        if rec.get("damage"):
            raise DamagedStoreError(path, f"{rec['damage']} ({rec['summary']})")
    finally:
        child.kill()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (and is ours or plain), else a StoreError with its text."""
    if isinstance(exc, QshpcError | OSError | ValueError | KeyError | TypeError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            pass
    return StoreError(f"{type(exc).__name__}: {exc}")


def _serve(target: str, path: Path) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the answers
    inp = sys.stdin.buffer
    reader: JobReader | None = None
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        method, args, kwargs = pickle.loads(inp.read(_LEN.unpack(head)[0]))
        try:
            if target == "arguments" and method == _ARGUMENTS:
                from qshpc.store.jobfile import load_arguments as load

                answer: tuple[str, Any] = ("ok", load(path, bool(args[0]), plain=True))
            elif target == "job" and method in _METHODS:
                if reader is None:
                    reader = JobReader.open_plain(path)
                if method == "schema":
                    answer = ("ok", True)
                else:
                    answer = ("ok", getattr(reader, method)(*args, **kwargs))
            else:
                answer = ("err", StoreError(f"unknown call {method!r}"))
        except BaseException as exc:  # everything goes back to the parent
            answer = ("err", _portable(exc))
        try:
            data = pickle.dumps(answer, protocol=5)
        except Exception as exc:
            data = pickle.dumps(("err", StoreError(f"the value read cannot travel: {exc}")))
        out.write(_LEN.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], Path(sys.argv[2]))
