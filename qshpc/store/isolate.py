"""Reading files without an integrity seal in a child process, under a time limit.

A job file written by an older qshpc (or one whose seal was destroyed) cannot
be checked before HDF5 parses it, and HDF5 can loop forever or crash on
damaged bytes. So such files are read by a child process (``python -m
qshpc.store.isolated_child``) that runs :class:`~qshpc.store.reader.JobReader`
on them; the parent waits at most :func:`time_limit` seconds per call. A child
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

from qshpc.errors import DamagedStoreError, SchemaVersionError, StoreError

_LEN = struct.Struct("<Q")
ARGUMENTS = "load_arguments"


def time_limit(path: Path) -> float:
    """Seconds one isolated call may take: ``QSHPC_READ_TIMEOUT_S`` (10) + 1 s per 50 MB."""
    from qshpc import settings

    base = settings.READ_TIMEOUT_S.get()
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return max(1.0, base) + size / 50e6


class UnreadableStoreError(DamagedStoreError):
    """Reading a file in the isolated child did not finish in time, or crashed the child."""


class Child:
    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qshpc.store.isolated_child", target, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            close_fds=True,
        )

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``method`` in the child; its value, or its exception raised here."""
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
        """End the child (it reads no more)."""
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


def load_arguments(path: Path, allow_pickle: bool) -> dict[str, Any]:
    """:func:`qshpc.store.jobfile.load_arguments` of an unsealed .h5 file, in a time-limited child."""
    child = Child(path, "arguments")
    try:
        value: dict[str, Any] = child.call(ARGUMENTS, (allow_pickle,), {})
        return value
    finally:
        child.kill()


def check_schema(path: Path) -> None:
    """Open ``path`` in a time-limited child: raises what opening it raises (e.g. SchemaVersionError)."""
    child = Child(path, "job")
    try:
        child.call("schema", (), {})
    finally:
        child.kill()


def probe(path: Path) -> None:
    """Read all of an unsealed job file in a time-limited child (before a writer builds on it).

    Raises:
        DamagedStoreError: When it cannot be read in full, or not in time.
    """
    child = Child(path, "job")
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
