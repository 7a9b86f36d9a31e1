"""Reading a job's logs: one streaming reader for ``Job.logs``, ``Job.iter_logs``,
``Job.filtered_logs`` and ``qshpc logs``; never a whole log in memory.

A job's logs are ``logs/rank-N.out`` (each rank's output) and, on Slurm,
``slurm-<job>_<rank>.out`` (submitit's), which repeat lines the rank's log holds:
those are left out once each (:class:`LogReader`).
"""

from __future__ import annotations

import codecs
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from qshpc.jobstate import TERMINAL, JobState


class LogJob(Protocol):
    """What :class:`LogReader` reads of a job (:class:`qshpc.client.job.Job` is one)."""

    def status(self) -> object: ...

    def _settle(self, timeout: float = 30.0) -> None: ...

    def _log_files(self, rank: int | None) -> list[Path]: ...


#: Bytes of a log read at a time: a log is never held whole (a long verbose job's log
#: is gigabytes: read whole, a MemoryError under ulimit -v, or the OOM killer).
LOG_CHUNK = 1 << 20
#: Slurm output files of one rank up to this size (together) are shown without the lines
#: that rank's log holds too; bigger ones are shown whole, with a note (finding those
#: lines holds the Slurm files' lines in memory).
DEDUP_MAX = 64 << 20


def log_chunks(path: Path, start: int = 0, size: int | None = None) -> Iterator[bytes]:
    """The bytes of a log from ``start`` on, ``size`` (default :data:`LOG_CHUNK`) at a time.

    Raises:
        OSError: The log cannot be opened (a FIFO there, not readable): never blocks.
    """
    from qshpc.store.seal import open_regular

    fd = open_regular(path)
    with open(fd, "rb", closefd=True) as fh:
        fh.seek(start)
        while data := fh.read(size or LOG_CHUNK):
            yield data


def tail_start(path: Path, lines: int) -> int:
    """Where the last ``lines`` lines of ``path`` start (as ``tail -n``: a line ends at
    ``\\n``; a last one without it counts), read backwards from the end.

    Raises:
        OSError: The log cannot be opened.
    """
    from qshpc.store.seal import open_regular

    with open(open_regular(path), "rb", closefd=True) as fh:
        end = fh.seek(0, os.SEEK_END)
        if lines == 0 or end == 0:
            return end
        fh.seek(end - 1)
        pos = end - 1 if fh.read(1) == b"\n" else end  # that newline ends the last line
        while pos > 0:
            step = min(LOG_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step)
            at = len(data)
            while (at := data.rfind(b"\n", 0, at)) >= 0:
                lines -= 1
                if lines == 0:
                    return pos + at + 1
        return 0


def _tail_text(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all of it for None), as :func:`tail_start`."""
    if lines is None:
        return text
    if lines == 0:
        return ""
    at = len(text) - 1 if text.endswith("\n") else len(text)
    for _ in range(min(lines, at + 1)):
        at = text.rfind("\n", 0, at)
        if at < 0:
            return text
    return text[at + 1 :]


def _tail_count(tail: object) -> int | None:
    """``tail`` checked: None, or a whole number of lines, 0 or more."""
    if tail is None or (isinstance(tail, int) and not isinstance(tail, bool) and tail >= 0):
        return tail
    from qshpc.errors import UserError
    from qshpc.text import shown

    raise UserError(f"tail must be a whole number of lines, 0 or more, got {shown(repr(tail))}")


def _not_shown(exc: OSError) -> str:
    return f"(not shown: {exc.strerror or exc})\n"


class LogReader:
    """One streaming reader of a job's logs: :meth:`Job.logs`, :meth:`Job.iter_logs`,
    :meth:`Job.filtered_logs` and ``qshpc logs`` all read through it (they had two
    copies of the joining rules; ``Job.logs`` read every log whole).

    Args:
        job: The job (``status``, ``_settle`` and ``_log_files`` are used).
        rank: Only this rank's logs.
        tail: Only the last lines of each log (see :meth:`Job.iter_logs`).
        read: How a log's bytes are read from an offset, a chunk at a time
            (default :func:`log_chunks`).
        note: Told, in one line, of Slurm files too big to leave out their rank's
            lines (default: a warning).

    Raises:
        UserError: ``tail`` is not a whole number, 0 or more.
    """

    def __init__(
        self,
        job: LogJob,
        rank: int | None = None,
        *,
        tail: int | None = None,
        read: Callable[[Path, int], Iterator[bytes]] | None = None,
        note: Callable[[str], None] | None = None,
        dedup_max: int | None = None,
    ) -> None:
        self.job, self.rank, self.tail = job, rank, _tail_count(tail)
        self.read = read or log_chunks
        self.note = note or _warn
        self.dedup_max = DEDUP_MAX if dedup_max is None else dedup_max
        self.done: dict[Path, int] = {}  # --follow: where each log's last look stopped
        self.decoders: dict[Path, codecs.IncrementalDecoder] = {}
        self.last: Path | None = None  # the log whose text came last

    def once(self) -> Iterator[str]:
        """The logs as :meth:`Job.logs` joins them: each (all ranks) under its
        ``==> NAME <==`` line, set apart by a blank line."""
        self.job._settle()
        for i, (f, texts) in enumerate(self.parts()):
            if i:
                yield "\n"
            if self.rank is None:
                yield f"==> {f.name} <==\n"
            yield from texts

    def parts(self) -> Iterator[tuple[Path, Iterator[str]]]:
        """Each log and its text as shown, a chunk at a time; a Slurm file whose rank
        has a log comes without that log's lines."""
        files = self.job._log_files(self.rank)
        held = self._held(files)
        for f in files:
            if f.name.startswith("slurm-") and (h := held.get(_slurm_rank(f))) is not None:
                yield f, iter([_tail_text(_without(self._text(f), h), self.tail)])
            else:
                yield f, self._tail_texts(f)

    def follow(self, poll: float = 0.5) -> Iterator[str]:
        """The logs as they grow, until the job ends. A Slurm output file whose rank
        has a log waits for the end (it repeats that log's lines: shown once, as
        :meth:`once` shows it)."""
        first = True
        while True:
            ended = self.job.status() in (*TERMINAL, JobState.DAMAGED)
            if ended:
                self.job._settle()
            files = self.job._log_files(self.rank)
            logged = {f.stem.partition("-")[2] for f in files if f.name.startswith("rank-")}
            late = [f for f in files if f.name.startswith("slurm-") and _slurm_rank(f) in logged]
            for f in files:
                if f not in late:
                    yield from self._new(f, ended, first)
            if ended:
                yield from self._ended(files, late)
                return
            first = False
            time.sleep(poll)

    def _put(self, f: Path, text: str, first: bool = False) -> Iterator[str]:
        """``text`` of ``f``; a new file set apart as :meth:`once` does: a blank line,
        then (all ranks) its ``==> NAME <==`` line (``first``: even with no text)."""
        if not text and not first:
            return
        if f != self.last:
            sep = "" if self.last is None else "\n"
            yield sep + (f"==> {f.name} <==\n" if self.rank is None else "")
            self.last = f
        if text:
            yield text

    def _new(self, f: Path, final: bool, first_look: bool) -> Iterator[str]:
        """What ``f`` gained since the last look (its name the first time, even empty;
        only its last ``tail`` lines if the first look finds it); ``final``: the job
        ended, and bytes that are not whole UTF-8 are shown too."""
        if f not in self.done:
            yield from self._put(f, "", first=True)
            try:
                start = tail_start(f, self.tail) if self.tail is not None and first_look else 0
            except OSError:
                start = 0  # said below, once
            self.done[f] = start
        start = self.done[f]
        if start < 0:  # not readable: said once
            return
        if start > _size(f):  # cut shorter or replaced: from its start again
            start = 0
            self.decoders.pop(f, None)
        decoder = self.decoders.setdefault(f, _decoder())
        try:
            for data in self.read(f, start):
                start += len(data)
                self.done[f] = start
                yield from self._put(f, decoder.decode(data))
            if final:
                yield from self._put(f, decoder.decode(b"", final=True))
        except OSError as exc:
            self.done[f] = -1
            yield from self._put(f, _not_shown(exc))

    def _ended(self, files: list[Path], late: list[Path]) -> Iterator[str]:
        """The job ended: the Slurm output files held back, without their ranks' log lines."""
        held = self._held(files)
        for f in late:
            text = self._text(f, max(self.done.get(f, 0), 0))
            h = held.get(_slurm_rank(f))
            text = text if h is None else _without(text, h)
            if f not in self.done:
                text = _tail_text(text, self.tail)
            yield from self._put(f, text, first=f not in self.done)

    def _texts(self, path: Path, start: int = 0) -> Iterator[str]:
        """A log's text (bytes that are not UTF-8 as ``\\xNN``), a chunk at a time."""
        decoder = _decoder()
        try:
            for data in self.read(path, start):
                yield decoder.decode(data)
        except OSError as exc:
            yield _not_shown(exc)
            return
        yield decoder.decode(b"", final=True)

    def _tail_texts(self, path: Path) -> Iterator[str]:
        """A log's text, or its last ``tail`` lines, read from where they start."""
        try:
            start = 0 if self.tail is None else tail_start(path, self.tail)
        except OSError as exc:
            yield _not_shown(exc)
            return
        yield from self._texts(path, start)

    def _text(self, path: Path, start: int = 0) -> str:
        return "".join(self._texts(path, start))

    def _lines(self, path: Path, longest: int) -> Iterator[str]:
        """A log's lines without their line breaks (``str.splitlines``); a line longer
        than ``longest`` comes cut to ``longest + 1`` characters (a line with no break
        in gigabytes is never held whole)."""
        carry = ""
        for text in self._texts(path):
            pieces = (carry + text).splitlines(keepends=True)
            carry = pieces.pop() if pieces else ""
            for piece in pieces:
                yield piece.splitlines()[0][: longest + 1]
            if len(carry) > longest + 2:  # keep its last character: a "\r" may pair with a "\n"
                carry = carry[: longest + 1] + carry[-1]
        if carry:
            yield carry.splitlines()[0][: longest + 1]

    def _held(self, files: list[Path]) -> dict[str, Counter[str]]:
        """Per rank, the lines of its log that its Slurm output files hold too (shown
        once), counted with memory bounded by the Slurm files' size, not the log's."""
        held: dict[str, Counter[str]] = {}
        logs = {f.stem.partition("-")[2]: f for f in files if f.name.startswith("rank-")}
        for rank, log in logs.items():
            slurm = [f for f in files if f.name.startswith("slurm-") and _slurm_rank(f) == rank]
            if not slurm:
                continue
            if sum(_size(f) for f in slurm) > self.dedup_max:
                names = ", ".join(f.name for f in slurm)
                self.note(
                    f"{names} shown whole (over {self.dedup_max >> 20} MiB): "
                    f"lines {log.name} holds too are not left out"
                )
                continue
            keys = {
                ln.rstrip("\r\n") for f in slurm for ln in self._text(f).splitlines(keepends=True)
            }
            longest = max(map(len, keys), default=0)
            held[rank] = Counter(ln for ln in self._lines(log, longest) if ln in keys)
        return held


def _decoder() -> codecs.IncrementalDecoder:
    """UTF-8 a chunk at a time: a character split between chunks comes whole."""
    return codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=2)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _slurm_rank(p: Path) -> str:
    """The rank of a Slurm output file ``slurm-<job>_<rank>.out`` (submitit's ``%j_%t``)."""
    return p.stem.rpartition("_")[2] if "_" in p.stem else ""


def _without(text: str, held: Counter[str]) -> str:
    """``text`` without one line per line that ``held`` counts (each taken once)."""
    kept = []
    for line in text.splitlines(keepends=True):
        key = line.rstrip("\r\n")
        if held[key] > 0:
            held[key] -= 1
        else:
            kept.append(line)
    return "".join(kept)


def _rank_of(p: Path) -> int:
    try:
        return int(p.stem.split("-")[1])
    except (IndexError, ValueError):
        return 10**9
