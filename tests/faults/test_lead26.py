"""Session 26, lead: a cancel says who may have sent it; a generator argument says what to pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli, start_cli, wait_succeeded
from tests.conftest import job_status as _status

pytestmark = [pytest.mark.timeout(240)]


def test_a_cancelled_job_names_who_sends_its_signal(tmp_path: Path, qshpc_home: Path) -> None:
    """review44 F7: ``qshpc cancel`` (and ``job.stop()``, scancel) stored "job cancelled:
    received SIGTERM" alone: a user who stopped the job looked for a killer."""
    prog = tmp_path / "slow.py"
    prog.write_text((PROGRAMS / "slow_40.py").read_text())
    proc = start_cli(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_succeeded(qshpc_home, proc, 2)
        job = job_dir_of(qshpc_home)
        cancel = run_cli("cancel", str(job), timeout=60)
        assert cancel.returncode == 0, cancel.stderr
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = _status(job)
    assert status["state"] == "CANCELED", status
    error = str(status["error"])
    assert "received SIGTERM (sent by qshpc cancel, job.stop(), scancel" in error, error
    assert b"sent by qshpc cancel" in out, out


def test_a_generator_as_an_argument_says_pass_a_list(tmp_path: Path) -> None:
    """review44 F10: a generator in the arguments was refused with no word of the fix."""
    code = (
        "import qshpc\n"
        f"qshpc.save_arguments({str(tmp_path / 'a.h5')!r}, {{'circuits': (i for i in range(3))}})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "generator" in out.stderr and "pass a list, list(...)" in out.stderr, out.stderr


def test_a_generator_as_a_task_argument_says_pass_a_list(tmp_path: Path) -> None:
    """review45 F7: the hint was missing for a task's argument (and an open file, an
    iterator too, must not get it)."""
    prog = tmp_path / "gen.py"
    prog.write_text(
        "from qshpc import distribute_task, get\n"
        "@distribute_task()\n"
        "def f(x):\n"
        "    return list(x)\n"
        "print(get(f(i for i in range(3))))\n"
    )
    out = run_cli("run", str(prog), "--workers", "1")
    assert out.returncode == 1, out.stderr
    assert "cannot be sent: pass a list, list(...)" in out.stderr, out.stderr
    from qshpc.store.encoding_blob import iterator_hint

    with open(prog) as fh:
        assert iterator_hint(fh) == "" and iterator_hint({"a": [fh]}) == ""
    assert iterator_hint({"a": [iter([1])]}) != ""


NAMEDTUPLE = """
import collections, os
import numpy as np
from qshpc import distribute_task, get, save_result
Pt = collections.namedtuple("Pt", "x y")
@distribute_task()
def t(i):
    print("RAN", i, flush=True)
    return Pt(np.arange(70000, dtype=float), i)
r = get(t(1))
print("GOT", type(r).__name__, r.y, float(r.x.sum()), flush=True)
save_result(r.y)
if os.environ.get("FAIL_AT_END"):
    raise SystemExit("fail at end")
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_job_whose_results_hold_a_class_of_the_program_resumes(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """review48 F2: a stored result holding an object of a class the program file defines
    (pickled by reference to ``__main__``) made every resume fail before the program ran,
    "corrupt blob-encoded value (Can't get attribute 'Pt' ...)", exit 2: rank 0 decoded the
    finished records before the program defined the class. They are now decoded when the
    program asks for them, and reused."""
    prog = tmp_path / "prog.py"
    prog.write_text(NAMEDTUPLE)
    job = tmp_path / "job"
    first = run_cli(
        "run", str(prog), "--workers", workers, "--job-dir", str(job), env={"FAIL_AT_END": "1"}
    )
    assert first.returncode == 1 and "RAN 1" in first.stdout, first.stderr
    again = run_cli("run", str(prog), "--resume", str(job))
    assert again.returncode == 0, again.stderr
    assert "RAN" not in again.stdout and "GOT Pt 1 2449965000.0" in again.stdout, again.stdout
    assert "1 reused from the store" in again.stdout + again.stderr, again.stderr
