"""A program's files left open for writing keep what it wrote, as under ``python program.py``.

On f163b7c a program that wrote a file and never closed it left the file empty under
``qshpc run`` (its globals are a cycle Python's exit frees without flushing), whole
under ``python program.py``. Real runs: inline, the local default, under mpiexec.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

PROGRAM = """
from qshpc import distribute_task, get, save_result

class Holder:
    def __del__(self):
        pass

holder = Holder()
log = open({log!r}, "w")
log.write("line\\n" * 10)
binary = open({blob!r}, "wb")
binary.write(b"x" * 100)

@distribute_task()
def task(x):
    kept = open({task_log!r} + str(x), "w")
    kept.write("task\\n")
    kept.self = kept  # a cycle: only the collector would free it
    return x

save_result({{"r": get([task(i) for i in range(3)])}})
"""


@pytest.mark.parametrize("how", ["inline", "local", "mpiexec"])
def test_unclosed_files_keep_what_the_program_wrote(tmp_path: Path, how: str) -> None:
    log, blob, task_log = tmp_path / "log.txt", tmp_path / "blob.bin", tmp_path / "task-"
    program = tmp_path / "prog.py"
    program.write_text(PROGRAM.format(log=str(log), blob=str(blob), task_log=str(task_log)))
    if how == "inline":
        out = run_cli("run", str(program), "--workers", "0")
    elif how == "local":
        out = run_cli("run", str(program), "--workers", "2")
    else:
        out = run_cli("run", str(program), ranks=2)
    assert out.returncode == 0, out.stderr
    assert log.read_text() == "line\n" * 10
    assert blob.read_bytes() == b"x" * 100
    for i in range(3):
        assert Path(f"{task_log}{i}").read_text() == "task\n"
    # the same program as a plain script keeps them too (the behaviour matched)
    (tmp_path / "plain.py").write_text(f"log = open({str(log)!r}, 'w'); log.write('plain')\n")
    subprocess.run([sys.executable, str(tmp_path / "plain.py")], check=True, timeout=60)
    assert log.read_text() == "plain"
