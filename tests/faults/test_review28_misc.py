"""review28 F11, F12: a program that works under plain ``python`` works under qshpc run too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GEN = """\
from qshpc import distribute_task, get, TaskError


@distribute_task()
def gen(n):
    yield from range(n)


@distribute_task()
def sq(x):
    return x * x


print("NAME", sq.__name__, sq.__qualname__)
try:
    print("GOT", list(get(gen(3))))
except TaskError as e:
    print("ERR", "SerializationError" in str(e), "generator" in str(e))
"""


def test_a_generator_task_fails_under_plain_python_as_on_a_worker(tmp_path: Path) -> None:
    prog = tmp_path / "gen.py"
    prog.write_text(GEN)
    plain = subprocess.run(
        [sys.executable, str(prog)], capture_output=True, text=True, timeout=120,
        env=dict(os.environ),
    )  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "qshpc", "run", "--workers", "1", str(prog)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    for out in (plain, run):
        assert "ERR True True" in out.stdout, out.stdout + out.stderr
        assert "NAME sq sq" in out.stdout, out.stdout + out.stderr
