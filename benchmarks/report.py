"""Benchmark: `qshpc report` and its timeline on a job of N task attempts (default 100k).

Writes a synthetic job store (N attempts over 64 worker ranks on 8 hosts, two
functions, 0.1% failed first tries with a retry each), then times, in one run:

- reading the job (``read_job``: meta, runs, records as columns, result);
- writing the report (the binned timeline, as qshpc does above 3000 attempts);
- the baseline: the same report drawing every attempt as its own rectangle;
- headless Chromium opening each file (navigation to the load event, over the
  DevTools pipe; ``tests/browser.py``), when chromium is installed;
- ``qshpc --help`` and ``import qshpc`` (nothing of the report loads there).

Prints a markdown table with sizes, times and the ratios binned/every-attempt.

Run: python benchmarks/report.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.browser

from qshpc.report.data import read_job
from qshpc.report.page import render
from qshpc.store import JobWriter, TaskRecord, create_job

WORKERS, HOSTS = 64, 8


def make_job(path: Path, n: int) -> None:
    """A finished job of ``n`` attempts with realistic times, spread over the ranks."""
    rng = np.random.default_rng(0)
    t0 = time.time() - 600
    ranks = [{"rank": r, "host": f"node{r * HOSTS // (WORKERS + 1)}", "pid": 1000 + r,
              "local_rank": 0, "cpus": 1} for r in range(WORKERS + 1)]  # fmt: skip
    create_job(path, {"id": "bench-report", "title": "report benchmark", "created": t0}, None)
    w = JobWriter.open(path, {"mpi_size": WORKERS + 1, "ranks": ranks, "started": t0})
    clock = np.full(WORKERS + 1, t0 + 1.0)
    for i in range(n):
        r = 1 + i % WORKERS
        wall = float(rng.exponential(0.05))
        fails = i % 1000 == 7
        for attempt in (1, 2) if fails else (1,):
            start = float(clock[r])
            clock[r] += wall + 0.0005
            w.append_task(
                TaskRecord(
                    task_id=str(i),
                    key=f"{i:032x}",
                    function="sample" if i % 3 else "energy",
                    state="FAILED" if fails and attempt == 1 else "SUCCEEDED",
                    attempt=attempt,
                    rank=r,
                    host=str(ranks[r]["host"]),
                    submitted=t0 + 1.0,
                    started=start,
                    finished=start + wall,
                    seed=i,
                    result=None if fails and attempt == 1 else i,
                    error="Traceback ...\nRuntimeError: flaky" if fails and attempt == 1 else None,
                )
            )
        if i % 5000 == 0:
            w.commit()
    w.commit()
    w.save_result({"counts": {"00": 3, "11": 5}})
    w.finalize("SUCCEEDED")


def timed(fn: object, reps: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def browser_load(path: Path) -> float | None:
    from tests.browser import Browser, chromium

    if chromium() is None:
        return None
    with Browser(timeout=300) as b:
        loads = []
        for _ in range(3):
            page = b.open(path.as_uri())
            assert not page.errors, page.errors
            loads.append(page.load_s)
    return statistics.median(loads)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        job = tmp / "job"
        make_job(job, n)
        read_s, data = timed(lambda: read_job(job, slurm=False))
        binned_s, html = timed(lambda: render(data))  # type: ignore[arg-type]
        every_s, html_all = timed(lambda: render(data, max_tasks=10**9), reps=1)  # type: ignore[arg-type]
        a, b = tmp / "binned.html", tmp / "every.html"
        a.write_text(str(html))
        b.write_text(str(html_all))
        load_a, load_b = browser_load(a), browser_load(b)
        size_a, size_b = a.stat().st_size, b.stat().st_size
    helps = [
        timed(lambda: subprocess.run([py, "-m", "qshpc", "--help"], capture_output=True), 5)[0]
    ]
    bare = timed(lambda: subprocess.run([py, "-c", "pass"], capture_output=True), 5)[0]
    attempts = len(data.table)  # type: ignore[attr-defined]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    print(f"{attempts} attempts on {WORKERS} worker ranks, {HOSTS} hosts")
    print("| report | file MB | render s | read s | browser load s |")
    print("|---|---|---|---|---|")
    print(
        f"| binned (qshpc) | {size_a / 1e6:.2f} | {binned_s:.2f} | {read_s:.2f} | {fmt(load_a)} |"
    )
    print(
        f"| every attempt drawn (baseline) | {size_b / 1e6:.2f} | {every_s:.2f} | {read_s:.2f} | {fmt(load_b)} |"
    )
    ratio = (size_a / size_b, load_a / load_b if load_a and load_b else None)
    print(f"binned / baseline: size {ratio[0]:.3f}x, browser load {fmt(ratio[1])}x")
    print(f"qshpc --help: {helps[0]:.3f} s (bare python {bare:.3f} s)")


if __name__ == "__main__":
    main()
