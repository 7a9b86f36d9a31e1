"""A `qshpc run` process ends without Python's teardown only when nothing can be lost.

:func:`qshpc.runtime.leave.exit_now` skips the interpreter's teardown (15-25 ms a
rank on the command's tail); what the teardown would still have done for the
program is checked here on real ranks: files the program or its tasks left open
(on rank 0, on the workers, one a preloaded module opened before the freeze),
``atexit`` handlers, a thread still writing, the exit code.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

HELPER = """\
import os
F = open(os.path.join(os.environ["OUT"], f"helper-{os.getpid()}.txt"), "w")
"""

PROGRAM = """\
import atexit
import builtins
import os
import threading
import time

import exit_helper
from qshpc import distribute_task, get

OUT = os.environ["OUT"]
left = open(os.path.join(OUT, "program.txt"), "w")
left.write("from the program\\n")
atexit.register(lambda: open(os.path.join(OUT, "atexit.txt"), "w").write("ran\\n"))


def late() -> None:
    time.sleep(0.3)
    with open(os.path.join(OUT, "thread.txt"), "w") as f:
        f.write("joined\\n")


threading.Thread(target=late).start()


@distribute_task()
def task(i):
    f = open(os.path.join(OUT, f"task-{i}.txt"), "w")
    f.write(f"task {i}\\n")
    builtins.__dict__.setdefault("kept", []).append(f)
    exit_helper.F.write(f"helper {i}\\n")
    return i


assert get([task(i) for i in range(6)]) == list(range(6))
"""


@pytest.mark.parametrize(("ranks", "workers"), [(None, "2"), (3, None), (None, "0")])
def test_nothing_written_is_lost_at_the_exit(
    ranks: int | None, workers: str | None, qshpc_home, tmp_path
) -> None:
    """(``--workers 0`` lost every such file's text on f163b7c: Python's teardown
    finalized the buffers under the program's text files before the text files.)"""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "exit_helper.py").write_text(HELPER)
    prog = tmp_path / "leaves_files.py"
    prog.write_text(PROGRAM)
    args = ["run", str(prog)] + (["--workers", workers] if workers is not None else [])
    out = run_cli(*args, ranks=ranks, env={"OUT": str(out_dir)}, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out_dir / "program.txt").read_text() == "from the program\n"
    assert (out_dir / "atexit.txt").read_text() == "ran\n"
    assert (out_dir / "thread.txt").read_text() == "joined\n"
    for i in range(6):
        assert (out_dir / f"task-{i}.txt").read_text() == f"task {i}\n"
    helped = "".join(p.read_text() for p in out_dir.glob("helper-*.txt"))
    assert sorted(helped.splitlines()) == [f"helper {i}" for i in range(6)]


def test_a_failed_program_keeps_its_exit_code_and_message(qshpc_home, tmp_path) -> None:
    prog = tmp_path / "fails.py"
    prog.write_text("raise ValueError('boom')\n")
    out = run_cli("run", str(prog), "--workers", "2")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ValueError: boom" in out.stderr
