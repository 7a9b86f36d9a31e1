"""review28 F16: a worker whose one call holds the GIL past QSHPC_WORKER_TIMEOUT_S is not
said to be killed or out of memory: its process is alive, and the message names the limit."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

PROGRAM = """\
import ctypes
from qshpc import distribute_task, get, TaskError


@distribute_task()
def hold():
    ctypes.PyDLL(None).sleep(6)  # a C call that keeps the GIL: no heartbeat meanwhile
    return 1


try:
    get(hold())
except TaskError as exc:
    print("ERR", exc)
"""


def test_a_call_holding_the_gil_is_named_as_such(tmp_path: Path) -> None:
    prog = tmp_path / "gil.py"
    prog.write_text(PROGRAM)
    out = run_cli(
        "run", "--workers", "1", str(prog), env={"QSHPC_WORKER_TIMEOUT_S": "2"}, timeout=120
    )
    text = out.stdout + out.stderr
    assert "stopped responding" in text, text[-3000:]
    assert "its process is alive" in text and "QSHPC_WORKER_TIMEOUT_S" in text, text[-3000:]
    assert "out of memory" not in text, text[-3000:]
