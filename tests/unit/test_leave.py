"""qshpc.runtime.leave: a rank that is done leaves; a process that goes on is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from qshpc.runtime.leave import leave_within


def test_a_process_that_is_not_exiting_is_never_ended() -> None:
    """``qshpc run`` called in-process (typer's CliRunner in the tests, a user's own script)
    arms the watchdog too; on 97ed98c it ended the whole pytest run, exit code 0, 10 s
    later, because a test had left a thread running."""
    stop = threading.Event()
    left = threading.Thread(target=stop.wait, name="left-by-a-test")
    left.start()
    try:
        leave_within(5, 0.05)
        time.sleep(0.5)  # the watchdog has looked: this process is still here
        assert left.is_alive()
    finally:
        stop.set()
        left.join()


def _files_left(code: str) -> str:
    root = Path(__file__).resolve().parents[2]
    prelude = "import gc, io, os, sys, tempfile\nfrom qshpc.runtime import leave\n"
    epilogue = "\nprint(leave.flush_open_files(), leave._other_files_open())\n"
    out = subprocess.run(
        [sys.executable, "-c", prelude + code + epilogue],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_no_file_left_open_for_writing_in_a_bare_process() -> None:
    assert _files_left("") == "False False"


def test_a_file_left_open_for_writing_is_seen() -> None:
    assert _files_left("f = open(tempfile.mktemp(), 'w')\nf.write('x')") == "True True"


def test_a_file_frozen_with_the_imports_is_seen_by_its_descriptor() -> None:
    """The walk skips frozen objects (qiskit's heap; 20-30 ms to walk): a preloaded module's
    file is found by its descriptor instead."""
    assert _files_left("f = open(tempfile.mktemp(), 'w')\ngc.freeze()") == "False True"


def test_closed_read_only_and_in_memory_files_are_not_counted() -> None:
    code = (
        "p = tempfile.mktemp()\n"
        "open(p, 'w').close()\n"
        "r = open(p)\n"  # read-only
        "b = io.BytesIO(); b.write(b'x')\n"  # in memory
        "d = open(tempfile.mktemp(), 'w'); os.unlink(d.name); d.close()\n"
    )
    assert _files_left(code) == "False False"


def test_qshpcs_own_logs_are_not_counted() -> None:
    """Rank 0's dispatch log and every rank's log are written with os.write (no buffer)."""
    code = (
        "from pathlib import Path\n"
        "from qshpc.store.seal import open_append\n"
        "fd = open_append(Path(tempfile.mktemp()), 0o600)\n"
    )
    assert _files_left(code) == "False False"


_PROGRAM_END = """\
import gzip, os, sys
from qshpc.runtime import leave, program_main
walks = []
walk = leave.open_files
leave.open_files = lambda: walks.append(1) or walk()
c_exit = leave._c_exit
leave._c_exit = lambda code: (print("walks", len(walks), "c_exit"), c_exit(code))
ns = {"__builtins__": __builtins__}
exec("def f():\\n    pass\\n", ns)  # a function: the globals are kept for the end
ns["z"] = gzip.open(sys.argv[1], "wt")
ns["z"].write("whole")
program_main._namespace[:] = [ns]
program_main._at_exit()
del ns
KEEP = open(os.devnull, "w") if len(sys.argv) > 2 else None
leave.exit_now(0)
print("walks", len(walks), "python's exit")
"""


def _program_end(tmp_path: Path, *args: str) -> str:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM_END, str(tmp_path / "z.gz"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr
    import gzip

    assert gzip.open(tmp_path / "z.gz", "rt").read() == "whole"
    return out.stdout.strip()


def test_the_program_s_end_walks_the_objects_once(tmp_path: Path) -> None:
    """finalize_program's walk found the gzip (then closed by the freeing): exit_now checks
    what that walk found instead of walking every object again (mend23; it walked twice)."""
    assert _program_end(tmp_path) == "walks 1 c_exit"


def test_a_file_still_open_after_the_program_s_end_keeps_python_s_exit(tmp_path: Path) -> None:
    """A file the freeing did not close (held outside the program's globals) is still seen
    among the noted ones: Python's own exit closes it."""
    assert _program_end(tmp_path, "keep") == "walks 1 python's exit"
