"""CPU burnt while waiting: qshpc's ranks vs a blocking MPICH receive, over 3 s of waiting.

Rank 0 waits in `get` on a 3 s task while rank 2 has nothing to do. qshpc's
waiting ranks sleep (condition variable on rank 0's program thread, improbe +
back-off sleep capped at 2 ms in the dispatcher and idle workers); a plain
`comm.recv` under MPICH spins a core at 100 %.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def cpu_of_tree(cmd: list[str]) -> tuple[str, dict[int, float]]:
    """Run cmd; sample the CPU time of each python child just before it exits."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parent = psutil.Process(proc.pid)
    seen: dict[int, float] = {}
    while proc.poll() is None:
        for child in parent.children(recursive=True):
            try:
                if "python" in child.name():
                    t = child.cpu_times()
                    seen[child.pid] = t.user + t.system
            except psutil.Error:
                pass
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    return out, seen


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, _ = cpu_of_tree(
            [
                _mpiexec(),
                "-n",
                "3",
                sys.executable,
                "-m",
                "qshpc",
                "run",
                str(HERE / "_idle_prog.py"),
                "--job-dir",
                f"{tmp}/job",
            ]
        )
        m = re.search(r"RANK0 wall=([\d.]+) cpu=([\d.]+)", out)
        out_raw, _ = cpu_of_tree(
            [_mpiexec(), "-n", "3", sys.executable, str(HERE / "_idle_raw.py")]
        )
        raw = [float(x) for x in re.findall(r"RAW rank=\d+ cpu=([\d.]+)", out_raw)]
    print("| waiting for 3 s | CPU seconds | share of one core |")
    print("|---|---|---|")
    if m:
        wall, cpu = float(m.group(1)), float(m.group(2))
        print(
            f"| qshpc rank 0 (program thread + dispatcher thread) | {cpu:.3f} | {cpu / wall:.1%} |"
        )
    for i, c in enumerate(raw, 1):
        print(f"| raw MPICH blocking recv, rank {i} | {c:.3f} | {c / 3.0:.1%} |")


if __name__ == "__main__":
    main()
