"""Benchmark: a program that saves one big array as its result (issue 17).

Runs ``qshpc run prog.py --workers 0`` for a program that builds an N MiB
float64 array and passes it to ``save_result``, and measures the job folder's
size on disk at the end, the peak disk use while it ran (sampled every 20 ms),
the peak memory of the process (``ru_maxrss``) and the wall time. The baseline,
in the same run: a plain process that builds the same array and ``np.save``s it.

Prints a markdown table with the ratios (qshpc / baseline).

Run: python benchmarks/big_result.py [MiB ...]   (default 256 1024)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROGRAM = """
import sys
import numpy as np
from qshpc import save_result
a = np.arange({n}, dtype=np.float64)
save_result(a)
"""

BASELINE = """
import numpy as np
a = np.arange({n}, dtype=np.float64)
np.save({out!r}, a)
"""


def du(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (allocated blocks)."""
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_blocks * 512
        except OSError:
            pass
    return total


def run(cmd: list[str], watch: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """Wall time, peak RSS of the child (bytes) and peak disk use under ``watch``."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], du(watch))
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    # A fresh parent per measurement: ru_maxrss of children is the max over all of them.
    out = subprocess.run(
        [sys.executable, "-c", _MAXRSS, *cmd], check=True, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    rss = int(out.stdout.strip().splitlines()[-1])
    return wall, rss * 1024, max(peak[0], du(watch))


_MAXRSS = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [256, 1024]
    rows = []
    for mib in sizes:
        n = mib * 2**20 // 8
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            root = Path(tmp)
            base_dir = root / "base"
            base_dir.mkdir()
            base_prog = root / "base.py"
            base_prog.write_text(BASELINE.format(n=n, out=str(base_dir / "a.npy")))
            b_wall, b_rss, b_disk = run(
                [sys.executable, str(base_prog)], base_dir, dict(os.environ)
            )
            home = root / "home"
            prog = root / "prog.py"
            prog.write_text(PROGRAM.format(n=n))
            env = {**os.environ, "QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0"}
            cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0"]
            q_wall, q_rss, q_disk_peak = run(cmd, home, env)
            q_disk = du(home / "jobs")
            rows.append((mib, q_disk, q_disk_peak, b_disk, q_rss, b_rss, q_wall, b_wall))
    print("| result | disk at end | peak disk | baseline disk | peak memory | baseline memory "
          "| wall | baseline wall |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    gb = 1e9
    for mib, qd, qp, bd, qr, br, qw, bw in rows:
        print(
            f"| {mib} MiB | {qd / gb:.2f} GB ({qd / bd:.2f}x) | {qp / gb:.2f} GB ({qp / bd:.2f}x) "
            f"| {bd / gb:.2f} GB | {qr / gb:.2f} GB ({qr / br:.2f}x) | {br / gb:.2f} GB "
            f"| {qw:.1f} s ({qw / bw:.1f}x) | {bw:.1f} s |"
        )


if __name__ == "__main__":
    main()
