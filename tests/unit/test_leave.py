"""qshpc.runtime.leave: a rank that is done leaves; a process that goes on is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


# -- leave_now: rank 0 leaves without freeing what the program held, when nothing is lost --

_LEAVE = """
import atexit, gc, sys
from qshpc.runtime import gctune
from qshpc.runtime.leave import leave_now
gctune.tune()
held = [{i: float(i) for i in range(1000)} for _ in range(50)]  # what a program keeps
atexit.register(lambda: print("atexit ran", flush=True))
{setup}
leave_now(3, {blocks})
print("went on", flush=True)
sys.exit(4)
"""


def _leave(tmp_path: Path, setup: str, blocks: int = 0) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "prog.py"
    script.write_text(_LEAVE.replace("{setup}", setup).replace("{blocks}", str(blocks)))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip


def test_leave_now_ends_the_process_with_its_code_after_the_atexit_handlers(
    tmp_path: Path,
) -> None:
    out = _leave(tmp_path, "print('buffered', end='')")  # stdout is a pipe: block-buffered
    assert out.returncode == 3, out.stderr
    assert out.stdout == "bufferedatexit ran\n"


@pytest.mark.parametrize(
    "setup",
    [
        # an open file whose buffer only the usual exit could flush
        "f = open('out.txt', 'w'); f.write('kept')",
        # a __del__ that writes
        "class A:\n    def __del__(self, w=open):\n        w('out.txt', 'w').write('kept')\na = A()",
        # a suspended generator whose finally writes
        "def g(w=open):\n    try:\n        yield 1\n    finally:\n        w('out.txt', 'w').write('kept')\n"
        "it = g(); next(it)",
        # the same, garbage in a cycle not yet collected
        "class A:\n    def __del__(self, w=open):\n        w('out.txt', 'w').write('kept')\n"
        "a = A(); a.me = a; del a",
        # a thread Python's exit waits for
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), open('out.txt', 'w').write('kept'))"
        ").start()",
        # the program froze its objects: they are hidden from the look
        "class A:\n    def __del__(self, w=open):\n        w('out.txt', 'w').write('kept')\n"
        "a = A(); gc.freeze()",
    ],
    ids=["open-file", "del", "generator", "cycle", "thread", "frozen"],
)
def test_leave_now_leaves_the_usual_way_when_something_would_be_lost(
    tmp_path: Path, setup: str
) -> None:
    """Whether Python's own exit then runs each finalizer is Python's affair (under the
    frozen heap it skips some); leave_now only never skips one itself."""
    out = _leave(tmp_path, setup)
    assert out.returncode == 4, out.stderr
    assert out.stdout.count("atexit ran") == 1  # run by leave_now, not again at the exit
    assert "went on" in out.stdout


def test_leave_now_leaves_the_usual_way_when_there_is_little_to_free(tmp_path: Path) -> None:
    out = _leave(tmp_path, "", blocks=10**12)
    assert out.returncode == 4, out.stderr
    assert out.stdout == "went on\natexit ran\n"  # Python's own exit ran the handler


def _files_left(code: str) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    prelude = "import gc, io, os, sys, tempfile\nfrom qshpc.runtime import leave\n"
    epilogue = "\nprint(leave._python_files_open(), leave._other_files_open())\n"
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
