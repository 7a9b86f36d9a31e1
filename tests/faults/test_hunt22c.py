"""Session 22's fault hunt (hunt22c): hunt21b's leftovers (FIFOs among the files qshpc
reads or writes in a store, a job folder made read-only while the job runs).

Each test failed on e5f893c (what it did there is said in the test); see
docs/bad-input.md, "Session 22, hunt22c".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid)")

#: Another user (nobody) who may read any file (the interpreter's are root's alone,
#: under /root) but whose writes are checked: a chmod a-w then holds for it.
AS_NOBODY = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]


def _env(home: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home), **more}


def _cli(
    *args: str, env: dict[str, str], user: list[str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI in a session of its own: a hang ends with the whole group killed (on e5f893c
    the launcher, blocked in open(), outlived SIGTERM, and its ranks the launcher)."""
    argv = [*(user or []), sys.executable, "-m", "qshpc", *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@needs_root
def test_a_job_folder_made_read_only_while_the_job_runs_ends_with_a_line_and_exit_1(
    open_dir: Path,
) -> None:
    # On e5f893c the run ended "qshpc: error: cannot finalize .../job.h5: Permission
    # denied. Free space on its file system ... or make it writable", without its
    # SUCCEEDED line, and exit 0 (the state and result were in the journal). When a
    # checkpoint came first, the program's next get() raised "StoreError: cannot
    # checkpoint ...": the job ended FAILED and its result was never saved.
    home = open_dir / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    prog = open_dir / "p.py"
    prog.write_text(
        "import os, time\nfrom pathlib import Path\n"
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef f(x):\n    return 2 * x\n"
        "v = sum(get([f(i) for i in range(4)]))\n"
        "(job,) = Path(os.environ['QSHPC_HOME'], 'jobs').iterdir()\n"
        "os.chmod(job, 0o500)  # the owner's own chmod a-w, while the job runs\n"
        "for k in range(4):  # checkpoints are due meanwhile (QSHPC_CHECKPOINT_S)\n"
        "    v += sum(get([f(i) for i in range(4)]))\n"
        "    time.sleep(0.3)\n"
        "save_result({'v': v})\n"
    )
    env = _env(home, QSHPC_CHECKPOINT_S="0.2")
    out = _cli("run", str(prog), "--workers", "1", env=env, user=AS_NOBODY)
    (job,) = (home / "jobs").iterdir()
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr[-3000:])
    assert f"qshpc: job {job.name} SUCCEEDED (20 tasks run)" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        f"qshpc: error: job {job.name}'s store {job}/job.h5 could not be completed "
        f"(Permission denied): its final state and result are kept whole in "
        f"{job}/job.journal; give yourself back write permission there (chmod -R u+rw "
        f"{job}), then `qshpc status {job.name}` completes job.h5"
    )
    got = _cli("result", job.name, env=env, user=AS_NOBODY)
    assert (got.returncode, got.stdout.strip()) == (0, "{'v': 60}"), got.stderr
    os.chmod(job, 0o700)
    status = _cli("status", job.name, env=env, user=AS_NOBODY)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("SUCCEEDED")
    assert not (job / "job.journal").exists()  # folded into job.h5 by that status


def _one_job(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A program, its environment and the folder of the one job it ran (FAILED at its end,
    its result saved), to resume."""
    from tests.conftest import FAIL, FAIL_AT_END

    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n" + FAIL_AT_END)
    env = _env(tmp_path / "home")
    assert _cli("run", str(prog), "--workers", "0", env={**env, **FAIL}).returncode == 1
    (job,) = (tmp_path / "home" / "jobs").iterdir()
    return prog, env, job


def test_a_fifo_at_a_timeline_file_is_left_and_the_run_ends(tmp_path: Path) -> None:
    # On e5f893c, with QSHPC_TIMELINE=1, a FIFO at logs/timeline-launcher.json made
    # `qshpc run --resume` block in open() after its SUCCEEDED line, for good (SIGTERM
    # did not end it).
    prog, env, job = _one_job(tmp_path)
    fifos = [job / "logs" / f"timeline-{who}.json" for who in ("launcher", "rank-0")]
    for fifo in fifos:
        os.mkfifo(fifo)
    out = _cli(
        "run", str(prog), "--resume", job.name, env={**env, "QSHPC_TIMELINE": "1"}, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"qshpc: job {job.name} SUCCEEDED" in out.stdout
    assert all(fifo.is_fifo() for fifo in fifos)  # left as they were, never written through


def test_a_fifo_among_the_uploaded_programs_is_left_out_with_a_warning(tmp_path: Path) -> None:
    # On e5f893c client.get_programs() waited for good on a FIFO named *.json in
    # $QSHPC_HOME/programs (it read each record with read_text), and so did
    # client.run(title) of a title whose record was a FIFO.
    (tmp_path / "e.py").write_text("print(1)\n")
    code = (
        "import os, warnings\nfrom qshpc import Program\nfrom qshpc.client import LocalClient\n"
        "from qshpc.client.base import _record_name\nfrom qshpc.errors import UserError\n"
        "c = LocalClient()\n"
        f"c.upload(Program(title='t', entrypoint='e.py', working_dir={str(tmp_path)!r}))\n"
        "d = os.path.join(os.environ['QSHPC_HOME'], 'programs')\n"
        "os.mkfifo(os.path.join(d, 'ghost.json'))\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    print([p.title for p in c.get_programs()])\n"
        "print(*[str(w.message) for w in seen], sep='\\n')\n"
        "os.mkfifo(os.path.join(d, _record_name('g2')))\n"
        "try:\n"
        "    c.run('g2')\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path / "home"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "home" / "programs"
    g2 = folder / _record_name("g2")
    assert out.stdout.splitlines() == [
        "['t']",
        f"{folder}/ghost.json is not a regular file: left out of the uploaded programs",
        f"the record of the uploaded program 'g2', {g2}, cannot be read (NotRegular: {g2} is "
        "not a regular file): upload the program again (client.upload(program)), or pass the "
        "Program itself",
    ]


def _record_name(title: str) -> str:
    from qshpc.client.base import _record_name as name

    return name(title)


def test_a_fifo_or_a_link_at_job_h5_tmp_is_never_written_through(tmp_path: Path) -> None:
    # On e5f893c job.h5.tmp (the copy every fold writes, then renames over job.h5) was
    # opened O_TRUNC: a FIFO there made `qshpc run --resume` wait for good (SIGTERM did
    # not end it), and a link there had the file it named overwritten with the store.
    prog, env, job = _one_job(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("mine")
    from tests.conftest import FAIL

    for plant, fail in ((os.mkfifo, FAIL), (lambda p: os.symlink(victim, p), {})):
        plant(job / "job.h5.tmp")  # (the first resume fails too: the second resumes it)
        out = _cli("run", str(prog), "--resume", job.name, env={**env, **fail}, timeout=60)
        assert out.returncode == (1 if fail else 0), out.stderr[-3000:]
        ended = f"qshpc: job {job.name} {'FAILED' if fail else 'SUCCEEDED'}"
        assert ended in out.stdout + out.stderr
        assert not os.path.lexists(job / "job.h5.tmp")
    assert victim.read_text() == "mine"
    got = _cli("result", job.name, env=env)
    assert (got.returncode, got.stdout.strip()) == (0, "1"), got.stderr
