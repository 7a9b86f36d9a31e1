"""Session 23's leftovers (mend23): review25's F7 and F8, hunt22e's old own-sbatch folders.

Each test failed on db7f14c (what it did there is said in the test); see
docs/bad-input.md, "Session 23, mend23".
"""

from __future__ import annotations

import py_compile
from pathlib import Path

from tests.conftest import job_dir_of, job_status, run_cli, start_cli, wait_succeeded


def test_a_pyc_program_is_refused_in_words_before_the_job_exists(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c: "program hi.pyc has a syntax error at line None: source code string
    # cannot contain null bytes" (review25 F8). Also by its header under another name.
    (tmp_path / "hi.py").write_text("print('hi')\n")
    pyc = py_compile.compile(str(tmp_path / "hi.py"), cfile=str(tmp_path / "hi.pyc"))
    renamed = tmp_path / "hi.bin"
    renamed.write_bytes(Path(pyc).read_bytes())
    for program in (Path(pyc), renamed):
        out = run_cli("run", str(program), "--workers", "0")
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == (
            f"qshpc: error: program {program} is compiled Python (a .pyc file): a job runs its "
            "program from the source; give the .py file it was compiled from"
        )
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())


EXIT_PRINTS = """\
import atexit
from qshpc import distribute_task, get


class Noisy:
    def __del__(self):
        print("from __del__", flush=True)


@distribute_task()
def f(x):
    return x


atexit.register(lambda: print("from atexit"))
kept = Noisy()
print(sum(get([f(i) for i in range(3)])))
"""


def test_what_the_program_prints_at_its_exit_is_in_rank_0_s_log(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c the lines an atexit handler and a __del__ (run by finalize_program)
    # printed reached the terminal only: rank-0.out ended at "3" (review25 F7), where
    # `python prog.py > out` keeps them.
    prog = tmp_path / "p.py"
    prog.write_text(EXIT_PRINTS)
    for workers in ("1", "0"):
        out = run_cli("run", str(prog), "--workers", workers, env={"QSHPC_HOME": str(qshpc_home)})
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-2:] == ["from atexit", "from __del__"], out.stdout
        job = job_dir_of(qshpc_home)
        log = (job / "logs" / "rank-0.out").read_text()
        assert log == "3\nfrom atexit\nfrom __del__\n", log
        logs = run_cli("logs", job.name, env={"QSHPC_HOME": str(qshpc_home)})
        assert "from __del__" in logs.stdout, logs.stdout


def test_an_old_own_sbatch_folder_gets_its_job_id_file_when_first_listed(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c a slurm-N folder made before the job_id file existed (session 22) cost
    # every `qshpc list` a read of its store (hunt22e): 200 of them, list 5.3-8.6 s here
    # against 2.7-4.1 s once the files are there. Written only into this user's own
    # writable slurm-N folders: not another's, not a copy named otherwise.
    import os
    import shutil

    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    jobs = qshpc_home / "jobs"
    env = {"QSHPC_HOME": str(qshpc_home)}
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(jobs / "slurm-7"), env=env)
    assert out.returncode == 0, out.stderr
    job_id = (jobs / "slurm-7" / "job_id").read_text().strip()
    (jobs / "slurm-7" / "job_id").unlink()  # as made before session 22
    shutil.copytree(jobs / "slurm-7", jobs / "slurm-8")
    shutil.copytree(jobs / "slurm-7", jobs / "copy")
    if os.geteuid() == 0:
        os.chown(jobs / "slurm-8", 65534, 65534)  # another user's folder
    listed = run_cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count(job_id) == 3, listed.stdout  # the three folders
    assert (jobs / "slurm-7" / "job_id").read_text() == f"{job_id}\n"
    assert not (jobs / "copy" / "job_id").exists()
    if os.geteuid() == 0:
        assert not (jobs / "slurm-8" / "job_id").exists()
    assert run_cli("status", job_id, env=env).returncode == 2  # two folders hold it


SLOW = """\
import time
from qshpc import distribute_task, get

@distribute_task()
def f(i):
    time.sleep(0.3)
    return i

print(sum(get([f(i) for i in range(60)])))
"""


def test_a_hangup_to_qshpc_run_alone_is_stored_as_sighup(tmp_path: Path, qshpc_home: Path) -> None:
    # On db7f14c `kill -HUP <qshpc run's pid>` stored CANCELED 'received SIGTERM' (the
    # launcher passed the hangup on to rank 0 as a SIGTERM: hunt22d); the exit code was
    # 129 already. Rank 0 of qshpc run's own launcher now handles SIGHUP itself.
    import signal
    import subprocess
    import sys

    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "2"]
    proc = start_cli(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_succeeded(qshpc_home, proc, 4)
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP, out
    status = job_status(job_dir_of(qshpc_home))
    assert status["state"] == "CANCELED", status
    assert "received SIGHUP" in str(status["error"]), status["error"]
