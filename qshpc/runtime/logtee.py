"""Copy a rank's stdout and stderr into ``logs/rank-<R>.out`` as they are written."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path


class LogTee:
    """Redirect file descriptors 1 and 2 through a pipe that a thread copies to a log file.

    The terminal (or Slurm's output file) still sees everything; the log file
    gets it as it is written, so logs are readable while the job runs.

    Args:
        path: The log file (created 0600).
        echo: Also write to the original stdout/stderr.
    """

    def __init__(self, path: Path, echo: bool = True) -> None:
        from qshpc.store import perms

        path.parent.mkdir(parents=True, exist_ok=True, mode=perms.dir_mode())
        self._log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, perms.file_mode())
        self._path = path
        self._echo = echo
        self._saved: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            r, w = os.pipe()
            self._saved[fd] = os.dup(fd)
            os.dup2(w, fd)
            os.close(w)
            t = threading.Thread(target=self._copy, args=(r, self._saved[fd]), daemon=True)
            t.start()
            self._threads.append(t)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass

    def _copy(self, r: int, orig: int) -> None:
        while True:
            try:
                data = os.read(r, 65536)
            except OSError:
                break
            if not data:
                break
            try:
                os.write(self._log, data)
            except OSError as exc:
                from qshpc.store.space import disk_full, full_error, note_lost_output

                if disk_full(exc):
                    note_lost_output(str(full_error(self._path, "the program's output")))
            if self._echo:
                try:
                    os.write(orig, data)
                except OSError:
                    pass
        os.close(r)

    def close(self) -> None:
        """Restore stdout/stderr and drain what is still in the pipes."""
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes the pipe's write end held by fd
        for t in self._threads:
            t.join(timeout=5)
        for saved in self._saved.values():
            os.close(saved)
        os.close(self._log)
