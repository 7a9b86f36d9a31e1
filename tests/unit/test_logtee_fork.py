"""A closed log tee leaves forked children alone (``qshpc.runtime.logtee``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from qshpc.runtime.logtee import LogTee

    folder = Path(sys.argv[1])
    for i in range(3):  # several tees, as unit tests and nested runs make
        LogTee(folder / f"rank-{i}.out").close()
    files = [os.open(folder / f"later-{i}", os.O_WRONLY | os.O_CREAT) for i in range(8)]
    inodes = [os.fstat(fd).st_ino for fd in files]
    pid = os.fork()
    if pid == 0:  # the closed tees' old numbers now name these files: still open here?
        ok = all(os.fstat(fd).st_ino == ino for fd, ino in zip(files, inodes))
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    """
)


def test_a_closed_tee_does_not_close_reused_descriptors_in_a_forked_child(tmp_path: Path) -> None:
    """Each tee registered an at-fork hook for good: a child forked after the tee was closed
    closed the descriptor numbers the tee had used, which by then named other files."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("child 0"), (out.stdout, out.stderr)
