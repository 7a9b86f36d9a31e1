"""qiskit-serverless 0.18-0.35's program-side names that need no gateway.

``get_logger`` and ``get_provider_logger`` (``logging`` loggers writing
``LEVEL: message`` lines, one per line of the message, to the rank's stdout and log: what
qiskit-serverless's job logs showed), ``ServerlessError`` (an error with a code),
``send_error`` (the error goes to the rank's log: there is no gateway to send it
to), ``is_running_in_serverless`` (True in a rank of a qshpc job) and ``is_trial``
(False: qshpc has no trial mode).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

#: The loggers' names (qiskit-serverless: "user" and "provider").
USER_LOGGER = "qshpc.user"
PROVIDER_LOGGER = "qshpc.provider"


class _LinesFormatter(logging.Formatter):
    """``LEVEL: line`` for each line of the message, as qiskit-serverless's PrefixFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().splitlines() or [""]
        text = "\n".join(f"{record.levelname}: {line}" for line in lines)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _RankLogHandler(logging.Handler):
    """Writes to the rank's stdout as it is at each record (the job's log, once teed).

    stdout, not stderr as qiskit-serverless's: the lines then keep their place among
    the program's prints (``INFO: User log`` before ``DELAY STARTS``, as qs's tests
    expect); through stderr, a print's text and its newline came apart around them.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def _logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not any(isinstance(h, _RankLogHandler) for h in logger.handlers):
        handler = _RankLogHandler()
        handler.setFormatter(_LinesFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    """The program's logger: ``INFO: message`` lines in the rank's log (qiskit-serverless 0.30)."""
    return _logger(USER_LOGGER)


def get_provider_logger() -> logging.Logger:
    """The function provider's logger: the same lines, in the same log (qshpc keeps no
    separate provider log; qiskit-serverless's gateway showed them only to the provider)."""
    return _logger(PROVIDER_LOGGER)


class ServerlessError(Exception):
    """An error with a code, for function developers (qiskit-serverless 0.32).

    Shown as ``[code] message`` (and the details on the next line); it travels
    whole from a task to ``get`` (its code, message and details kept).
    """

    def __init__(self, code: str, message: str, details: Any | None = None) -> None:
        self.code = code
        self.message = message
        self.details = details
        super().__init__(message)

    def __str__(self) -> str:
        details = f"\n{self.details}" if self.details else ""
        return f"[{self.code}] {self.message}{details}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.details))


def send_error(code: str | int, message: str, exception: str, args: Any | None = None) -> bool:
    """Record an error event: qshpc writes it to the rank's log as ``ERROR: Error code: ...``.

    qiskit-serverless 0.32 sent it to the gateway (and logged it when there was
    none). Returns True: the log holds it.
    """
    extra = f" {args}" if args else ""
    get_provider_logger().error("Error %s: %s: %s%s", code, exception, message, extra)
    return True


def is_running_in_serverless() -> bool:
    """True in a rank of a qshpc job (``qshpc run``, a client's job); False in plain Python."""
    from qshpc.task import context

    return context.in_job()


def is_trial() -> bool:
    """False: qshpc has no trial mode (qiskit-serverless's gateway limited trial users)."""
    return False
