"""``Job.result()`` returns once the store is final (rank 0's end note), not at the launcher's exit.

The ranks' teardown (qiskit's and Aer's, MPI's finalize, mpiexec's and the launcher's
exits: 0.1-0.15 s on 2 cores) comes after the store is final; a notebook's
``job.result()`` need not wait for it. ``wait()``, ``logs()`` and ``report()`` still do.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

import qshpc
from qshpc import LocalClient, Program, open_job

pytestmark = pytest.mark.mpi

#: A program whose rank 0 lingers after the store is final (an atexit handler: as a
#: slow interpreter teardown would).
LINGER = """
import atexit, time
from qshpc import distribute_task, get, get_arguments, save_result

@distribute_task()
def square(x):
    return x * x

args = get_arguments()
atexit.register(lambda: (time.sleep(args["linger"]), print("teardown done", flush=True)))
save_result({"squares": get([square(i) for i in range(args["n"])])})
if args.get("fail_after_saving"):
    raise RuntimeError("failed after saving")
"""


def _program(tmp_path: Path) -> Program:
    (tmp_path / "linger.py").write_text(textwrap.dedent(LINGER))
    return Program(title="linger", entrypoint="linger.py", working_dir=str(tmp_path))


def test_result_returns_once_the_store_is_final(qshpc_home: Path, tmp_path: Path) -> None:
    job = LocalClient(workers=1).run(_program(tmp_path), arguments={"n": 5, "linger": 6.0})
    result = job.result(timeout=120)
    assert job._process is not None and job._process.poll() is None  # the launcher still runs
    assert result == {"squares": [0, 1, 4, 9, 16]}
    assert job.status() == "SUCCEEDED"
    assert open_job(job.job_id).result() == result  # what any later reader gets
    job.logs()  # waits for the launcher: every line is written
    assert job._process.poll() is not None
    assert "teardown done" in (job.job_dir / "logs" / "launcher.out").read_text()
    assert job.wait(timeout=30) == "SUCCEEDED"
    assert open_job(job.job_id).result() == result


def test_logs_after_the_store_is_final_wait_for_the_launcher(
    qshpc_home: Path, tmp_path: Path
) -> None:
    # No result() first: rank 0's note alone says the launcher's last lines are to come.
    from qshpc.jobs.endnote import read_end_note

    job = LocalClient(workers=1).run(_program(tmp_path), arguments={"n": 2, "linger": 4.0})
    assert job._process is not None
    deadline = time.monotonic() + 120
    while read_end_note(job._end_note) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job._process.poll() is None  # the launcher still runs (rank 0 lingers)
    job.logs()
    assert job._process.poll() is not None
    assert "teardown done" in (job.job_dir / "logs" / "launcher.out").read_text()


def test_a_job_failing_after_saving_reads_as_it_will_after_the_end(
    qshpc_home: Path, tmp_path: Path
) -> None:
    job = LocalClient(workers=1).run(
        _program(tmp_path), arguments={"n": 3, "linger": 4.0, "fail_after_saving": True}
    )
    early = job.result(timeout=120)  # a saved result is returned, as after the end
    assert early == {"squares": [0, 1, 4]}
    assert job.status() == "FAILED"
    assert job.wait(timeout=30) == "FAILED"
    assert open_job(job.job_id).result() == early
    assert "failed after saving" in (open_job(job.job_id).error_message() or "")


def test_the_note_is_removed_and_a_foreign_note_is_not_used(
    qshpc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A QSHPC_LAUNCH_END left in the caller's environment is not the client's note.
    stray = tmp_path / "stray"
    stray.write_text("")
    monkeypatch.setenv("QSHPC_LAUNCH_END", str(stray))
    job = LocalClient(workers=1).run(_program(tmp_path), arguments={"n": 2, "linger": 0.0})
    note = job._end_note
    assert note and note != str(stray) and os.path.basename(note).startswith("qshpc-end-")
    assert job.result(timeout=120) == {"squares": [0, 1]}
    assert job.wait(timeout=30) == "SUCCEEDED"
    deadline = time.monotonic() + 10
    while os.path.exists(note) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(note)  # the launcher removed it at its end
    assert stray.read_text() == ""  # never written


def test_a_launcher_ignores_a_given_note_that_is_not_the_users_own(tmp_path: Path) -> None:
    from qshpc.launch.local import _EndNote

    target = tmp_path / "target"
    target.write_text("")
    link = tmp_path / "qshpc-end-1-link"
    link.symlink_to(target)
    assert _EndNote(str(link)).path != str(link)  # a link: the launcher makes its own
    loose = tmp_path / "qshpc-end-1-loose"
    loose.write_text("")
    loose.chmod(0o644)
    assert _EndNote(str(loose)).path != str(loose)  # others may read it
    full = tmp_path / "qshpc-end-1-full"
    full.write_text("{}")
    full.chmod(0o600)
    assert _EndNote(str(full)).path != str(full)  # written already
    fine = tmp_path / "qshpc-end-1-fine"
    fine.write_text("")
    fine.chmod(0o600)
    assert _EndNote(str(fine)).path == str(fine)


def test_a_failed_program_still_raises(qshpc_home: Path) -> None:
    from tests.conftest import PROGRAMS

    program = Program(title="fails", entrypoint="task_fails.py", working_dir=str(PROGRAMS))
    job = LocalClient(workers=1).run(program)
    with pytest.raises(qshpc.JobFailedError, match="bad input 3"):
        job.result(timeout=120)
