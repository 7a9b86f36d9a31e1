"""review28 F5: under plain ``python``, Ctrl-C during a call that runs in the program's
process is the program's KeyboardInterrupt, as without qshpc (it became the call's
TaskError: a loop that skips failed points could not be stopped, and the program's own
``except KeyboardInterrupt`` never ran)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROGRAM = """\
import time
from qshpc import distribute_task, get


@distribute_task()
def slow(i):
    time.sleep(0.5)
    return i


ok = []
try:
    for i in range(40):
        try:
            ok.append(get(slow(i)))
            print("point", i, flush=True)
        except Exception as e:  # skip points whose fit failed
            print("skipped", i, type(e).__name__, flush=True)
except KeyboardInterrupt:
    print("interrupted after", len(ok), flush=True)
    raise
print("done", ok, flush=True)
"""


def test_ctrl_c_in_plain_python_interrupts_the_program(tmp_path: Path) -> None:
    prog = tmp_path / "ctrlc.py"
    prog.write_text(PROGRAM)
    env = dict(os.environ)
    p = subprocess.Popen(
        [sys.executable, str(prog)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    assert p.stdout is not None
    assert p.stdout.readline().startswith("point 0")  # a call ran: the next one is running
    time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0, out + err
    assert "interrupted after" in out and "skipped" not in out and "done" not in out, out + err
    assert "KeyboardInterrupt" in err
