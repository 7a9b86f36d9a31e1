"""What a command does with qshpc's own errors: one line on stderr and an exit code (no typer)."""

from __future__ import annotations

import sys


def exit_code(exc: BaseException) -> int | None:
    """Print ``qshpc: error: ...`` for qshpc's own errors and return their exit code.

    2 for bad input or a store that cannot be read, 1 for a failed job, 3 for a
    timeout, 1 for any other qshpc error; None (nothing printed) for the rest,
    which the caller re-raises.
    """
    from qshpc.errors import JobFailedError, QshpcError, StoreError, UserError

    if isinstance(exc, (UserError, StoreError)):
        code = 2
    elif isinstance(exc, JobFailedError):
        code = 1
    elif isinstance(exc, TimeoutError):
        code = 3
    elif isinstance(exc, QshpcError):
        code = 1
    else:
        return None
    from qshpc.text import shown_lines

    # The text may hold what the job stored (a failed job's error, its program's
    # exception): control characters escaped, never sent to the terminal raw.
    print(f"qshpc: error: {shown_lines(exc)}", file=sys.stderr)
    return code
