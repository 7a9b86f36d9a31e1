"""Session 25, fix38c: review38 F5 (a rank's last output lost when it dies), review35 F4
(a reader that stops reading stalls the job), review38 F7 (``qshpc run`` ate the caller's stdin).

Each test failed on the main this branch started from (327c4ed); docs/bad-input.md,
"Session 25, fix38c".
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, job_dir_of, run_cli

DIES = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from qshpc.runtime.logtee import LogTee

    LogTee(Path(sys.argv[1]))
    for i in range(3000):
        print(f"line {i}", flush=True)
    print("last words", file=sys.stderr, flush=True)
    if sys.argv[2] == "exit":
        os._exit(4)
    import ctypes
    ctypes.string_at(0)  # a segfault
    """
)


@pytest.mark.parametrize("how", ["exit", "segv"])
def test_what_a_process_wrote_before_it_died_reaches_the_log_and_the_terminal(
    tmp_path: Path, how: str
) -> None:
    # On 327c4ed the tee's thread died with the process: the lines still in its pipes were
    # lost from both (review38 F5: "before" of print-then-os._exit, 3 runs of 3).
    log = tmp_path / "rank-0.out"
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", DIES, str(log), how], capture_output=True, timeout=60
        )
        assert out.returncode == (4 if how == "exit" else -11), out.stderr
        assert out.stdout.count(b"\n") == 3000 and out.stdout.endswith(b"line 2999\n")
        assert b"last words\n" in out.stderr
        text = log.read_bytes()
        assert text.count(b"line 2999\n") == 1 and b"last words\n" in text, text[-200:]
        if how == "segv":  # the crash report, after the lines printed before it
            assert text.index(b"Fatal Python error") > text.index(b"last words"), text[-2000:]
            assert b"Fatal Python error" not in out.stderr  # the log's, as before
        log.unlink()


TOPOS = 'import os\nprint("before", flush=True)\nos._exit(4)\n'
LASTWORDS = textwrap.dedent(
    """
    import ctypes, sys
    from qshpc import distribute_task, get

    @distribute_task()
    def f(i):
        print("task says goodbye", flush=True)
        ctypes.string_at(0)

    get(f(1))
    """
)


@pytest.mark.mpi
def test_a_ranks_last_line_before_it_dies_is_in_its_log_and_on_the_terminal(
    tmp_path: Path, qshpc_home: Path
) -> None:
    prog = tmp_path / "topos.py"
    prog.write_text(TOPOS)
    out = run_cli("run", str(prog), "--workers", "1", timeout=120)
    assert out.returncode == 4 or out.returncode == 1, out.stderr
    assert "before" in out.stdout
    job = job_dir_of(qshpc_home)
    assert (job / "logs" / "rank-0.out").read_text().startswith("before\n")
    prog = tmp_path / "lastwords.py"
    prog.write_text(LASTWORDS)
    out = run_cli("run", str(prog), "--workers", "1", timeout=120)
    assert out.returncode == 1, out.stderr
    assert "task says goodbye" in out.stdout
    logs = sorted(
        (p for p in qshpc_home.glob("jobs/*/logs/rank-1.out")), key=lambda p: p.stat().st_mtime
    )
    assert "task says goodbye" in logs[-1].read_text()


LOUD = textwrap.dedent(
    """
    from qshpc import distribute_task, get, save_result

    @distribute_task()
    def f(i):
        print(f"task {i:04d} " + "x" * 1000, flush=True)
        return i

    save_result(sum(get([f(i) for i in range(400)])))
    """
)


@pytest.mark.mpi
def test_a_reader_that_stops_reading_does_not_stall_the_job(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On 327c4ed `qshpc run loud.py | sleep 75` made no progress until sleep ended: the
    # launcher blocked writing to the full pipe, then mpiexec, then the ranks (review35 F4).
    (tmp_path / "loud.py").write_text(LOUD)
    with open(tmp_path / "err", "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qshpc", "run", str(tmp_path / "loud.py"), "--workers", "1"],
            stdout=subprocess.PIPE,
            stderr=fh,
            cwd=ROOT,
        )
        try:
            code = proc.wait(timeout=90)  # nobody reads its stdout meanwhile
        finally:
            proc.kill()
            shown = proc.stdout.read() if proc.stdout else b""
    stderr = (tmp_path / "err").read_text()
    assert code == 0, stderr
    job = job_dir_of(qshpc_home)
    import re

    said = re.search(
        r"qshpc: (\d+) line\(s\) of the ranks' stdout not shown here \(stdout not read\); all are in the ranks' logs, (\S+) \(qshpc logs (\S+)\)",
        stderr,
    )
    assert said, stderr
    assert said.group(2) == str(job / "logs") and said.group(3) == job.name
    printed = shown.count(b"\n")  # the tasks' 400 lines, then rank 0's 2 (SUCCEEDED, store)
    assert 0 < printed < 400 and printed + int(said.group(1)) == 402, (printed, said.group(1))
    logged = (job / "logs" / "rank-1.out").read_text()  # nothing lost from the log
    assert sorted(re.findall(r"task (\d{4}) x", logged)) == [f"{i:04d}" for i in range(400)]


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "QSHPC_PROGRESS_S": "0", "PYTHONPATH": str(ROOT), "QSHPC": sys.executable}
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )


@pytest.mark.mpi
def test_qshpc_run_takes_only_the_stdin_its_program_reads(tmp_path: Path) -> None:
    # On 327c4ed mpiexec read the caller's stdin for rank 0 whether the program read it or
    # not: `printf 'l1\nl2\n' | (qshpc run ok.py; cat)` printed nothing of it, and a
    # `ls | while read f; do qshpc run "$f"; done` ran only the first (review38 F7).
    (tmp_path / "ok.py").write_text('print("ok")\n')
    (tmp_path / "ask.py").write_text('print("hello", input())\nprint("then", input())\n')
    (tmp_path / "in.txt").write_text("first\nbob\nalice\nrest\n")
    run = '"$QSHPC" -m qshpc run {} --workers 1 2>/dev/null'
    out = _sh(f"printf 'l1\\nl2\\n' | ({run.format('ok.py')}; cat)", tmp_path)
    assert out.stdout.splitlines()[0] == "ok" and out.stdout.endswith("l1\nl2\n"), out
    out = _sh(
        f"printf 'a.py\\nb.py\\nc.py\\n' | while read f; do {run.format('ok.py')}; done", tmp_path
    )
    assert out.stdout.count("ok\n") == 3, out
    # input() still gets what is piped in; from a file, where the caller is in it
    out = _sh(f"printf 'bob\\nalice\\n' | {run.format('ask.py')}", tmp_path)
    assert out.stdout.startswith("hello bob\nthen alice\n"), out
    out = _sh(f"(read first; {run.format('ask.py')}) < in.txt", tmp_path)
    assert out.stdout.startswith("hello bob\nthen alice\n"), out


WAITALL = """\
import os
for _ in range(2):
    if os.fork() == 0:
        os._exit(0)
n = 0
while True:
    try:
        os.wait()
        n += 1
    except ChildProcessError:
        break
print("reaped", n)
"""


@pytest.mark.mpi
def test_the_copier_is_no_child_of_the_rank(tmp_path: Path) -> None:
    # A copier started as the rank's child made this wait-until-ECHILD loop wait for ever
    # (found in this session, before commit; 327c4ed's thread had no such process).
    (tmp_path / "waitall.py").write_text(WAITALL)
    out = run_cli("run", str(tmp_path / "waitall.py"), "--workers", "1", timeout=90)
    assert out.returncode == 0 and out.stdout.startswith("reaped 2\n"), out
