"""Running the program file as ``__main__`` on rank 0, and the traceback shown when it fails."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from qshpc.runtime import stopsig
from qshpc.runtime.scheduler import Requeue, Scheduler
from qshpc.runtime.stopsig import before as _before
from qshpc.runtime.stopsig import received as _received
from qshpc.runtime.tidy import Tidy
from qshpc.task.execute import Interrupt


class Cancelled(Interrupt):
    """Raised in the program's thread when the job receives SIGTERM/SIGINT."""


def defer_signals() -> None:
    """Rank 0 outside the program: a SIGINT/SIGTERM is remembered, never raised.

    Before the program starts, the program is then cancelled as soon as it
    would start; after it ended, the signal no longer interrupts storing the
    job's end (the drain, the final state). Either way rank 0 records the job's
    state instead of dying with a traceback and leaving it to the launcher.
    (:mod:`qshpc.runtime.stopsig`: ``python -m qshpc run`` calls it first thing.)
    """
    stopsig.defer_signals()


#: Who sends each stop signal, as far as rank 0 can tell (review44 F7: "received SIGTERM"
#: alone made a user who called ``job.stop()`` look for a killer).
_SENDERS = {
    "SIGTERM": "qshpc cancel, job.stop(), scancel, a time limit or another kill",
    "SIGINT": "Ctrl-C, or kill -INT",
    "SIGHUP": "the terminal was closed, or kill -HUP",
}


def _sender(signum: int) -> str:
    """`` (sent by ...)`` for a stop signal; empty for another."""
    who = _SENDERS.get(signal.Signals(signum).name)
    return f" (sent by {who})" if who else ""


def cancel_at_start() -> None:
    """Cancel the program as it would start, as a SIGTERM received before it does."""
    _received.append(signal.SIGTERM)


def default_signals() -> None:
    """The handling from before :func:`defer_signals` again (the job is stored)."""
    for s in stopsig.stop_signals():
        if s in _before:
            signal.signal(s, _before.pop(s))


def signals_received() -> int:
    """How many SIGINT/SIGTERM rank 0 received so far (a new one: the user asks to stop)."""
    return len(_received)


def cancel_signal() -> int | None:
    """The signal that cancelled the program (the first one received), or None."""
    return _received[0] if _received else None


def exec_program(
    program: Path, argv: list[str], scheduler: Scheduler | None = None
) -> tuple[str, str | None]:
    """Run the program file as ``__main__``; return ``(state, error text)``.

    SIGTERM, SIGINT and SIGUSR2 (and SIGHUP: :func:`stopsig.stop_on_hangup`) cancel the
    program (CANCELED), unless the
    ``scheduler`` says the signal means a requeue (REQUEUE: ask for it;
    REQUEUED: already done). ``argv`` is the program's ``sys.argv`` (its first item as
    given on the command line: :meth:`qshpc.jobs.prepare.RunSpec.program_argv`).
    """

    fired: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if fired:  # the job is already ending: a Ctrl-C reaches rank 0 twice (the
            return  # launcher and mpiexec both pass it on); a second raise would escape
        fired.append(signum)
        again = scheduler.requeue_reason(signum) if scheduler is not None else None
        if again is not None:
            raise again
        if signum in stopsig.stop_signals():
            _received.append(signum)
        raise Cancelled(f"received {signal.Signals(signum).name}{_sender(signum)}")

    early = list(_received)  # received before the program started (see defer_signals)
    tidy = Tidy()  # rank 0's streams, handlers: what the program leaves set is undone at its end
    handled = (*stopsig.stop_signals(), signal.SIGUSR2)
    old = {s: signal.signal(s, on_signal) for s in handled}
    saved_argv = sys.argv
    sys.argv = list(argv)
    add_program_path(program)
    try:
        if early:
            del _received[:]
            on_signal(early[0], None)  # cancel (or requeue) before the program runs
        try:
            _run_file(str(program))
        except BaseException as exc:
            if stopsig.forked:  # a child the program forked, not rank 0
                stopsig.end_fork("the program", exc, _user_traceback(exc, program))
            raise
        if stopsig.forked:
            stopsig.end_fork("the program", None)
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
        tidy.restore()  # a program that set sys.stderr = None still has its traceback shown
        text = _user_traceback(exc, program) + import_hint(exc)
        sys.stderr.write(text)  # (the hint in the rank's log too; the summary says it no more)
        return "FAILED", text
    finally:
        sys.argv = saved_argv
        for s, h in old.items():
            signal.signal(s, h)
        tidy.restore()  # (an alarm left armed killed rank 0 in its exit: "Alarm clock")


#: The program's globals once it ran (:func:`finalize_program` frees them).
_namespace: list[dict[str, Any]] = []


def _run_file(path: str) -> None:
    """Run the file as ``__main__``, as ``runpy.run_path`` does, keeping its globals.

    ``runpy`` returns a copy of the globals and drops its module: the program's
    functions then hold its globals in a cycle that the exit never frees, so a
    gzip, bz2, xz or zip file the program left open lost its end (unreadable) and
    a ``__del__`` never ran, where ``python program.py`` writes them whole.
    """
    import io
    import types

    with io.open_code(path) as f:
        data = f.read()
    # (a .pyc is refused before: qshpc.jobs.prepare.check_program; dont_inherit: this
    # module's own __future__ imports stay its own)
    code = compile(data, path, "exec", dont_inherit=True)
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=path, __cached__=None, __doc__=None, __loader__=None, __package__="",
        __spec__=None,
    )  # fmt: skip
    ns = module.__dict__
    _namespace[:] = [ns]
    _at_exit()
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, ns)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
        else:
            sys.modules.pop("__main__", None)
        del module
        # Held by nothing else (no function, class or frame of the program's): freed now,
        # as runpy's were, before the job's end is stored (a gzip then whole by then).
        if sys.getrefcount(ns) <= 3:  # this name, _namespace's, getrefcount's argument
            _namespace.clear()


_registered: list[bool] = []
#: How many ``atexit`` handlers there were when the program started (finalize_program's
#: included): more at its end, and the program (or what it imported) registered some.
_handlers_at_start: list[int] = []
#: Rank 0's log (``logs/rank-0.out``), for what the program prints at the exit.
_exit_log: list[Path] = []
#: The tee that copies the exit's output into it, while it runs.
_exit_tee: list[Any] = []


def _at_exit() -> None:
    """:func:`finalize_program` at the process's exit, once: after the program's own
    ``atexit`` handlers (registered later, run first), as Python orders them."""
    import atexit

    if not _registered:
        atexit.register(finalize_program)
        _registered.append(True)
    _handlers_at_start[:] = [atexit._ncallbacks()]


def log_the_exit(log: Path) -> None:
    """What the program prints at the process's exit goes into ``log`` too (review25 F7).

    Rank 0's tee closes before the job's summary line (which is the terminal's, not
    the log's): a ``__del__`` that :func:`finalize_program` runs, or an ``atexit``
    handler of the program's, printed to the terminal (or Slurm's output file) alone,
    where ``python program.py > out`` keeps it. A tee opens again for them: first
    thing at the exit when the program registered ``atexit`` handlers (a handler
    registered now runs before theirs), else when :func:`finalize_program` has
    something to finish; it closes when that is done.
    """
    import atexit

    _exit_log[:] = [log]
    if _handlers_at_start and atexit._ncallbacks() > _handlers_at_start[0]:
        atexit.register(_open_exit_tee)


def _open_exit_tee() -> None:
    """Copy this process's output into the log :func:`log_the_exit` named (once)."""
    if not _exit_log or _exit_tee or not _exit_log[0].parent.is_dir():
        return  # (a folder removed since: not made again)
    from qshpc.errors import UserError
    from qshpc.runtime.logtee import LogTee

    try:
        _exit_tee.append(LogTee(_exit_log[0]))
    except (UserError, OSError):  # the terminal has it still
        pass


def _close_exit_tee() -> None:
    _exit_log.clear()
    while _exit_tee:
        _exit_tee.pop().close()


def finalize_program() -> None:
    """Free the program's globals as Python's exit frees a module's (an ``atexit`` handler).

    It runs where Python's teardown would: after the job is stored, the threads
    joined and the program's own ``atexit`` handlers run (review25: run before them,
    a handler found its globals None), with the usual signal handling back (a Ctrl-C
    interrupts a slow ``__del__``). Each name is set to None, the last one bound
    first (``__builtins__`` kept): a file the program left open is closed (its end
    written) and a ``__del__`` runs while the names bound before its object (``os``,
    say) are still there. ``python program.py`` frees them too, in an order of its
    own (a ``__del__`` there may find ``open`` gone). Skipped while a thread the
    program started still runs (a daemon: Python's exit never lets it see its
    globals go).

    Only when there is something to finish (:func:`_left_to_finish`): freeing a
    program's objects costs time (85-260 ms for 512 dicts of 4096 entries), which
    qshpc's exit otherwise skips (:func:`qshpc.runtime.leave.exit_now`).
    """
    try:
        if not _namespace:
            return
        ns = _namespace.pop()
        if _program_thread_alive() or not _left_to_finish(ns):
            return
        _open_exit_tee()  # a __del__'s output goes into the log too
        for name in reversed(list(ns)):
            if name != "__builtins__":
                ns[name] = None
    finally:
        _close_exit_tee()


def _program_thread_alive() -> bool:
    """Whether a thread other than the main one still runs that Python's exit would wait
    for (not a daemon), or whose code is the program's (its target or its class)."""
    import threading

    main = threading.main_thread()
    for t in threading.enumerate():
        if t is main or not t.is_alive():
            continue
        if not t.daemon:
            return True
        target = getattr(t, "_target", None)
        if type(t).__module__ == "__main__" or getattr(target, "__module__", None) == "__main__":
            return True
    return False


def _left_to_finish(ns: dict[str, Any]) -> bool:
    """Whether a file is open for writing (its end not yet written: gzip, zip...) or the
    program's globals hold a class of its own with a ``__del__``."""
    for value in ns.values():
        if isinstance(value, type) and value.__module__ == "__main__" and "__del__" in vars(value):
            return True
    from qshpc.runtime.leave import note_open_files, open_files

    try:
        found = open_files()
    except Exception:  # unsure: as Python's exit would
        return True
    note_open_files(found)  # exit_now checks these after, not every object again
    return bool(found)


def _user_traceback(exc: BaseException, program: Path) -> str:
    """The traceback from the program's frames on (qshpc's own launch frames dropped),
    :func:`qshpc.text.utf8_safe` (a message naming a non-UTF-8 file: review55 E2).
    """
    from qshpc.text import utf8_safe

    return utf8_safe(_program_frames(exc, program))


def _program_frames(exc: BaseException, program: Path) -> str:
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


#: Qiskit 1's V1 primitives, gone from ``qiskit.primitives`` in Qiskit 2.
_V1_PRIMITIVES = ("Sampler", "Estimator", "BackendSampler", "BackendEstimator")
#: V2 names of qiskit_ibm_runtime's and Aer's that ``qiskit.primitives`` does not have.
_V2_NAMES = ("SamplerV2", "EstimatorV2")


def import_hint(exc: BaseException) -> str:
    """One line saying what to import instead, for the imports a seed-style program of
    Qiskit 1 and quantum-serverless makes that fail with Qiskit 2 and qshpc ("" otherwise)."""
    if not isinstance(exc, ImportError):
        return ""
    name = exc.name or ""
    if name.split(".")[0] in ("quantum_serverless", "qiskit_serverless"):
        return (
            "qshpc: hint: a quantum-serverless program runs on qshpc with its imports "
            "changed to qshpc (from qshpc import get_arguments, save_result, distribute_task, "
            "get; the full list: docs/quantum-serverless.md)\n"
        )
    if name.split(".")[0] == "ray":
        return (
            "qshpc: hint: qshpc runs no Ray, but keeps its meaning: decorate with "
            "@distribute_task() instead of @ray.remote and call f(x) instead of f.remote(x) "
            "(a reference, at once); get, put and wait are ray.get, ray.put and ray.wait "
            "(from qshpc import distribute_task, get, put, wait; docs/quantum-serverless.md)\n"
        )
    if name.startswith("qshpc.") and isinstance(exc, ModuleNotFoundError):
        return (
            f"qshpc: hint: there is no module {name}: import every quantum-serverless name "
            "from qshpc itself (from qshpc import distribute_task, get; the full list: "
            "docs/quantum-serverless.md)\n"
        )
    text = str(exc)
    if name == "qshpc" and "cannot import name" in text:
        return (
            "qshpc: hint: qshpc has the quantum-serverless names that mean something on MPI "
            "ranks; docs/quantum-serverless.md lists each, with what to use for the others\n"
        )
    if name.split(".")[0] == "qiskit_ibm_runtime" or (
        name == "qiskit.primitives" and any(f"import name '{n}'" in text for n in _V2_NAMES)
    ):
        return (
            "qshpc: hint: the same PUBs run on Aer over the job's ranks with "
            "from qshpc.aer import SamplerV2, EstimatorV2 (docs/primitives.md)\n"
        )
    if name == "qiskit.primitives" and any(f"import name '{n}'" in text for n in _V1_PRIMITIVES):
        return (
            "qshpc: hint: Qiskit 2 removed the V1 primitives from qiskit.primitives; "
            "from qshpc.aer import Sampler (or Estimator) keeps their call shape "
            "(Sampler().run(circuit).result().quasi_dists[0]) on Aer, and Qiskit 2's own "
            "are SamplerV2 and EstimatorV2 (from qshpc.aer import SamplerV2)\n"
        )
    return ""


def add_program_path(program: Path) -> None:
    """Let the program import modules that sit beside it (as ``python program.py`` would)."""
    folder = str(program.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
