"""Session 29, fixT: the run's words on a lost worker's finished results are on the line
the user sees (the run's last line, the job card, ``qshpc status``'s error head)."""

from __future__ import annotations

from pathlib import Path

from qshpc.errors import error_head
from qshpc.report.card import first_line
from tests.conftest import job_dir_of, job_status, run_cli

LOST = """\
import ctypes
from qshpc import distribute_task, get


@distribute_task()
def sq(i):
    return i * i


@distribute_task()
def hold():
    ctypes.PyDLL(None).sleep(4)  # a C call that keeps the GIL: no heartbeat meanwhile
    return 1


print(get([sq(i) for i in range(4)]))
try:
    get(hold())
except Exception as exc:
    exc.add_note("while holding the GIL")
    raise
"""


def test_the_kept_words_are_on_the_line_the_user_sees(tmp_path: Path, qshpc_home: Path) -> None:
    """rank0.with_resume appended them to the error's last line: here the note after the
    TaskError's remote traceback, while the run's last line and the card show the
    TaskError's own line, which said nothing of the 4 results kept nor of --resume."""
    prog = tmp_path / "lost.py"
    prog.write_text(LOST)
    out = run_cli(
        "run", "--workers", "1", str(prog), env={"QSHPC_WORKER_TIMEOUT_S": "1"}, timeout=120
    )
    assert out.returncode == 1, out.stdout + out.stderr
    job = job_dir_of(qshpc_home)
    words = f"4 finished task results are kept in the store; `qshpc run {prog} --resume"
    last = out.stderr.strip().splitlines()[-2]  # before "qshpc: logs in ..."
    assert last.startswith("qshpc: TaskError: task 4 (hold)") and words in last, out.stderr
    error = job_status(job)["error"]
    assert error.rstrip().endswith("while holding the GIL"), error  # the note is left as it is
    for shown in (error_head(error), first_line(error)):
        assert "WorkerLostError" in shown and words in shown, error
