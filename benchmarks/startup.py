"""Start-up cost: `import qshpc` and `qshpc --help`, against bare `python -c pass`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], reps: int = 7) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    py = sys.executable
    base = timed([py, "-c", "pass"])
    imp = timed([py, "-c", "import qshpc"])
    api = timed([py, "-c", "from qshpc import distribute_task, get, save_result, get_arguments"])
    cli = timed([py, "-m", "qshpc", "--help"])
    print("| what | median s | over bare python |")
    print("|---|---|---|")
    for name, t in (
        ("python -c pass", base),
        ("import qshpc", imp),
        ("from qshpc import <program API>", api),
        ("qshpc --help", cli),
    ):
        print(f"| {name} | {t:.3f} | +{t - base:.3f} |")


if __name__ == "__main__":
    main()
