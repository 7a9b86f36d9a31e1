"""Running the program file as ``__main__`` on rank 0, and the traceback shown when it fails."""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from qshpc.runtime.scheduler import Requeue, Scheduler


class Cancelled(BaseException):
    """Raised in the program's thread when the job receives SIGTERM/SIGINT."""



def exec_program(
    program: Path, argv: list[str], scheduler: Scheduler | None = None
) -> tuple[str, str | None]:
    """Run the program file as ``__main__``; return ``(state, error text)``.

    SIGTERM, SIGINT and SIGUSR2 cancel the program (CANCELED), unless the
    ``scheduler`` says the signal means a requeue (REQUEUE: ask for it;
    REQUEUED: already done).
    """

    def on_signal(signum: int, frame: Any) -> None:
        again = scheduler.requeue_reason(signum) if scheduler is not None else None
        if again is not None:
            raise again
        raise Cancelled(f"received {signal.Signals(signum).name}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
    saved_argv = sys.argv
    sys.argv = [str(program), *argv]
    add_program_path(program)
    try:
        runpy.run_path(str(program), run_name="__main__")
        return "SUCCEEDED", None
    except SystemExit as exc:
        if exc.code in (None, 0):
            return "SUCCEEDED", None
        return "FAILED", f"the program called sys.exit({exc.code!r})"
    except Cancelled as exc:
        return "CANCELED", f"job cancelled: {exc}"
    except Requeue as exc:
        return ("REQUEUE" if exc.ask_scheduler else "REQUEUED"), exc.why
    except BaseException as exc:
        text = _user_traceback(exc, program)
        sys.stderr.write(text)
        return "FAILED", text
    finally:
        sys.argv = saved_argv
        for s, h in old.items():
            signal.signal(s, h)


def _user_traceback(exc: BaseException, program: Path) -> str:
    """The traceback from the program's frames on (qshpc's own launch frames dropped).

    For qshpc's own errors (a bad call, a store that went away) the frames inside
    qshpc are dropped too: the program's lines say where, the message says what.
    """
    from qshpc.errors import QshpcError

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != str(program):
        tb = tb.tb_next
    if isinstance(exc, QshpcError) and tb is not None:
        inside = str(Path(__file__).resolve().parents[1]) + os.sep
        frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(inside)]
        return (
            "Traceback (most recent call last):\n"
            + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(type(exc), exc))
        )
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def add_program_path(program: Path) -> None:
    """Let the program import modules that sit beside it (as ``python program.py`` would)."""
    folder = str(program.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)

