"""Text from the store made safe to print: control characters shown, never obeyed.

Titles, job ids, sub-statuses, error texts, host names and log lines come from
the store, and whoever wrote it (a program, another user in a shared store, a
damaged file) can put terminal control sequences in them: an ESC sequence that
recolours or clears the screen, sets the window title or moves the cursor, a
carriage return or newline that draws a forged ``SUCCEEDED`` line, a BEL, a
bidirectional override that shows text in another order. Everything the CLI
prints from the store goes through :func:`shown` (one line) or
:func:`shown_lines` (line breaks and tabs kept), and everything the HTML report
and the notebook cards show through :func:`html_escape`; ``qshpc logs --raw``
is the only way to get a log's bytes as written.

Escapes look like Python's: ``\\x1b``, ``\\r``, ``\\u202e``.
"""

from __future__ import annotations

# Bidirectional controls and line/paragraph separators are not category Cc, but
# reorder or break what the terminal shows ("Trojan Source"), so they are escaped too.
_EXTRA = (0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(cp: int) -> str:
    if cp in _NAMED:
        return _NAMED[cp]
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def _table(keep: str) -> dict[int, str]:
    codes = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_EXTRA]  # Cc is 00-1f, 7f-9f
    return {cp: _escape(cp) for cp in codes if chr(cp) not in keep}


_ONE_LINE = _table("")
_LINES = _table("\n\t")


def shown(value: object) -> str:
    """``value`` as one printable line: every control character escaped (newlines too)."""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_ONE_LINE)


def error_line(line: str) -> str:
    """A traceback's last line as qshpc's summaries show it, ``ClassName: message``: a
    task's ``ValueError: bad`` as it is, and qshpc's own error without the module that
    Python's traceback names (``qshpc.errors.SerializationError: ...``), so that every
    summary line reads ``qshpc: ClassName: message`` (review44 F9)."""
    return line.removeprefix("qshpc.errors.")


def utf8_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (a lone surrogate: a file name of
    non-UTF-8 bytes that ``os.fsdecode`` gave) written as ``\\udcff``: the store's
    records, msgpack and a terminal in strict UTF-8 take it (review55 E2: a task error
    naming such a file killed its worker, or the program got a UnicodeEncodeError
    instead of its TaskError)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def shown_lines(value: object) -> str:
    """``value`` as printable text: line breaks and tabs kept, other controls escaped."""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_LINES)


def shown_time(t: object, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Unix time ``t`` (from the store, a job's ``status.json``, a lock's holder) as local
    time in ``fmt``: ``-`` when there is none, ``?`` when no calendar holds it.

    review30 F5: a ``status.json`` time of 1e12, 1e17 or 1e400 (JSON's infinity) made
    ``qshpc status`` end in a traceback (``year 33658 is out of range``); ``cache ls``
    shows such a time as ``?`` (hunt19) and so does every job view.
    """
    from datetime import datetime

    if not t:
        return "-"
    try:  # (a year past 9999 or before 1, NaN and infinity raise: shown as ``?``)
        return datetime.fromtimestamp(float(t)).strftime(fmt)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


#: The longest duration shown (317 years): a longer one comes from a damaged time.
LONGEST_S = 1e10


def shown_seconds(secs: float) -> bool:
    """Whether a duration can be shown: finite and under :data:`LONGEST_S` either way."""
    return -LONGEST_S < secs < LONGEST_S


def html_escape(value: object, quote: bool = True) -> str:
    """``value`` as HTML text: :func:`shown_lines` (a bidi override or a NUL in a title or
    an error shown as ``\\u202e``, ``\\x00``, never obeyed: review32 F2 saw a report's
    job id shown reversed), then ``html.escape``. The HTML report, the timeline SVG and
    the notebook cards put every text from the store through it."""
    from html import escape

    return escape(shown_lines(value), quote)


def shown_bytes(data: bytes) -> str:
    """Log bytes as printable text (invalid UTF-8 shown as ``\\xNN``), line breaks kept."""
    return data.decode("utf-8", errors="backslashreplace").translate(_LINES)


__all__ = ["error_line", "html_escape", "shown", "shown_bytes", "shown_lines"]
