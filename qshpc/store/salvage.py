"""The journal read alone, when ``job.h5`` cannot be (review55 R1).

A killed run's results since its last fold are in ``job.journal``, each frame
checked by its own CRC. When ``job.h5``'s header, log or token cannot be read,
the frames are still whole: a frame holds the meta and result bytes of the records
it commits, so a record whose bytes lie in the frames is read from them alone. What
``job.h5`` held before the journal began (bytes before the first frame's start) is
not. Nothing in a journal names its job: only ``job.h5`` (the token it expects)
can confirm that the journal is this job's. :func:`journal_alone` says which:
``confirmed``, ``foreign`` (its token is not the one ``job.h5`` expects: none of it
is counted), or neither (``job.h5`` cannot tell).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qshpc.errors import DamagedStoreError, StoreError
from qshpc.store import layout as L
from qshpc.store.batch import Ends
from qshpc.store.encoding_blob import PickleRefusedError
from qshpc.store.journal import JournalFrame, check_token, read_journal, read_large, token_of
from qshpc.store.log import LogReader, frame_end
from qshpc.store.records import TaskRecord


class JournalLog(LogReader):
    """A :class:`LogReader` over journal frames alone: ``job.h5``'s part is never read
    (a read of a byte before the frames raises :class:`StoreError`)."""

    def __init__(self, source: str, frames: list[JournalFrame], journal: Path) -> None:
        base = frames[0].frame.start if frames else Ends()
        whole: list[JournalFrame] = []
        pos = base
        for jf in frames:  # only frames that follow each other (read_journal gives them so)
            if jf.frame.start != pos:
                break
            whole.append(jf)
            pos = frame_end(jf)
        self.f, self.pinned = None, None  # no job.h5, and the journal opened per read
        self.source, self.journal, self.ends, self.frames = source, journal, base, whole
        self._cache: dict[str, bytes] = {}
        self._starts: dict[str, list[int]] = {}
        self._large: dict[int, list[bytes]] = {}

    def _read_folded(self, name: str) -> bytes:
        raise StoreError(f"{self.source}: these bytes are in job.h5, which cannot be read")

    def stream(self, name: str, off: int, n: int) -> bytes:
        if off < getattr(self.ends, name.rsplit("/", 1)[1]):
            self._read_folded(name)
        return super().stream(name, off, n)

    def blob(self, where: int, off: int, n: int) -> bytes:
        if where == L.WHERE_LARGE and off < self.ends.large:
            self._read_folded(L.LARGE)
        if where != L.WHERE_LARGE:
            return self.stream(L.DATA, off, n)
        for jf in self.frames:
            pos = jf.frame.start.large
            if pos <= off < pos + sum(jf.large_lens):
                for blob in read_large(self.journal, jf):  # its CRC checked
                    if pos == off:
                        return blob
                    pos += len(blob)
        raise StoreError(f"{self.source}: a large result at {off} is missing")

    def blob_buffer(self, where: int, off: int, n: int) -> bytes | bytearray:
        return self.blob(where, off, n)

    def _rows(self, name: str, field: str) -> Any:
        import numpy as np

        rows = [getattr(jf.frame, field) for jf in self.frames]
        if not rows:
            return np.zeros(0, L.RECORD_DTYPE if field == "records" else L.EVENT_DTYPE)
        out = np.concatenate(rows)
        return out[out["valid"] == 1]


def _whose(f: Any, jpath: Path, token: bytes) -> str:
    """ "confirmed", "foreign" or "unconfirmed": what the open ``job.h5`` ``f`` (None: it
    cannot be opened) says of the journal whose header holds ``token``."""
    if f is None:
        return "unconfirmed"
    try:
        check_token(f, jpath, token)
    except DamagedStoreError:
        return "foreign"
    except Exception:
        return "unconfirmed"  # job.h5's log attributes cannot be read
    try:
        raw = bytes(f[L.LOG].attrs[L.JOURNAL_TOKEN_ATTR].tobytes())
        return "confirmed" if raw[:8] == token or token == token_of(f) else "unconfirmed"
    except Exception:
        return "unconfirmed"


def open_journal(job_dir: Path, f: Any = None) -> tuple[JournalLog, str] | None:
    """The journal of ``job_dir`` read alone, and :func:`_whose` word on it; None when
    there is none, or it holds no frame."""
    jpath = Path(job_dir) / L.JOURNAL_FILE
    try:
        token, frames, _ = read_journal(jpath)
    except OSError:
        return None
    if not token or not frames:
        return None
    return JournalLog(str(jpath), frames, jpath), _whose(f, jpath, token)


def journal_alone(job_dir: Path, f: Any = None, deep: bool = True) -> dict[str, Any] | None:
    """What the journal of ``job_dir`` holds, read alone (``f``: ``job.h5`` open, to
    check the journal's token against; None when it cannot be opened).

    Returns:
        None when there is no journal with frames; else ``whose`` (see :func:`_whose`),
        ``results`` ``[readable, total]`` (readable is None unless ``deep``; ``[0, 0]``
        for a foreign journal: none of it is counted), ``in_h5`` (task results whose
        record needs ``job.h5``'s bytes), ``h5_records`` (how many records ``job.h5``
        held before the journal began: 0, it held none).
    """
    found = open_journal(job_dir, f)
    if found is None:
        return None
    log, whose = found
    if whose == "foreign":
        return {"whose": whose, "results": [0, 0], "in_h5": 0, "h5_records": 0}
    latest, in_h5 = _latest(log)
    readable: int | None = None
    if deep:
        readable = 0
        for _, row in latest.values():
            try:
                log.record_result(row, False)
            except PickleRefusedError:
                pass  # the bytes are whole: only loading them needs trust
            except Exception:
                continue
            readable += 1
    return {
        "whose": whose,
        "results": [readable, len(latest)],
        "in_h5": in_h5,
        "h5_records": log.ends.records,
    }


def _latest(log: JournalLog) -> tuple[dict[str, tuple[dict[str, Any], Any]], int]:
    """Key -> (fields, row) of the latest SUCCEEDED record the journal's bytes hold, and how
    many SUCCEEDED records need ``job.h5``'s bytes (or cannot be read)."""
    latest: dict[str, tuple[dict[str, Any], Any]] = {}
    in_h5 = 0
    for row in log.records():
        if int(row["state"]) != 0:
            continue
        try:
            fields = log.record_fields(row)
        except Exception:
            in_h5 += 1
            continue
        latest[fields["key"]] = (fields, row)
    return latest, in_h5


def journal_line(found: dict[str, Any]) -> str:
    """The words on :func:`journal_alone`'s dict, for ``recoverable``'s list."""
    readable, total = found["results"]
    check = (
        "CRC-checked and its token matches job.h5's"
        if found["whose"] == "confirmed"
        else "CRC-checked, not checked against job.h5: nothing in a journal names its job"
    )
    if readable is None or readable == total:
        text = f"job.journal's {total} task results ({check})"
    else:
        text = f"job.journal's {readable} of {total} task results ({check})"
    return text


def journal_records(job_dir: str | Path, allow_pickle: bool = False) -> dict[str, TaskRecord]:
    """The task results of ``job_dir``'s journal read alone: key -> latest SUCCEEDED record
    (each with ``task_id`` and ``result``). For a job whose ``job.h5`` cannot be read
    (``qshpc status`` says ``job.journal's N task results``): these are not checked
    against ``job.h5``, which alone could confirm that they are this job's.

    Raises:
        StoreError: There is no journal, or ``job.h5`` names it another job's or run's.
    """
    job_dir = Path(job_dir)
    f = None
    try:
        f = L.open_read(L.job_file(job_dir))
    except Exception:
        f = None
    try:
        found = open_journal(job_dir, f)
    finally:
        if f is not None:
            L.close_read(f)
    if found is None:
        raise StoreError(f"{job_dir / L.JOURNAL_FILE} holds no commits (or is not there)")
    log, whose = found
    if whose == "foreign":
        raise StoreError(
            f"{log.journal} is not the journal {L.job_file(job_dir)} expects (another job's "
            "or run's): none of its records are this job's"
        )
    out: dict[str, TaskRecord] = {}
    for key, (fields, row) in _latest(log)[0].items():
        fields.pop("run")
        out[key] = TaskRecord(**fields, result=log.record_result(row, allow_pickle))
    return out
