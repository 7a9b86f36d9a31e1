"""Benchmark: what `qshpc status` (and `list`, `Job.status()`) cost for a big store (review38 F16).

Makes jobs with ``qshpc run --workers 1`` whose tasks return float64 arrays (N tasks x M MiB,
each 20 KB-50 MB result in ``/log/large``), one ended and one still running (its results in
``job.journal``, the program asleep), and a small ended one. Then times each command as a
fresh process (``ru_maxrss`` of the child, wall time; the files are in the page cache: warm),
for every qshpc source tree given (``--tree DIR``, put first on ``PYTHONPATH``), interleaved.

Run: python benchmarks/status_size.py --tasks 60 --mib 25 --tree /work/main --tree .
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAM = """
import sys, time
import numpy as np
from qshpc import distribute_task, get, save_result
n, mib, sleep = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
@distribute_task()
def f(i):
    return np.full(int(mib * (1 << 20)) // 8, float(i))
total = sum(float(get(r)[0]) for r in [f(i) for i in range(n)])
if sleep:
    print("ready", flush=True)
    time.sleep(sleep)
save_result(total)
"""

_TIMED = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " p.returncode)"
)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of ``cmd`` in a fresh parent, run in
    the tree (``-m qshpc`` takes the tree's package before an editable install's)."""
    out = subprocess.run([sys.executable, "-c", _TIMED, *cmd], env=env, check=True,
                         capture_output=True, text=True, cwd=env["PYTHONPATH"])  # fmt: skip
    wall, rss, rc = out.stdout.split()
    return float(wall), int(rss), int(rc)


def make(
    home: Path, prog: Path, tree: str, n: int, mib: float, sleep: float
) -> tuple[Path, object]:
    env = {**os.environ, "QSHPC_HOME": str(home), "PYTHONPATH": tree}
    before = set((home / "jobs").iterdir()) if (home / "jobs").exists() else set()
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1", "--",
           str(n), str(mib), str(sleep)]  # fmt: skip
    if not sleep:
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tree)
        proc = None
    else:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=tree,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        assert proc.stdout is not None
        while "ready" not in proc.stdout.readline():
            pass
    (job,) = set((home / "jobs").iterdir()) - before
    return job, proc


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=60)
    ap.add_argument("--mib", type=float, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", action="append", required=True)
    a = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in a.tree]
    root = Path(tempfile.mkdtemp(prefix="status-size-"))
    home = root / "home"
    prog = root / "big.py"
    prog.write_text(PROGRAM)
    small, _ = make(home, prog, trees[-1], 3, 0.01, 0)
    ended, _ = make(home, prog, trees[-1], a.tasks, a.mib, 0)
    running, proc = make(home, prog, trees[-1], a.tasks, a.mib, 600)
    try:
        print(f"load {os.getloadavg()[0]:.1f}; small {du(small) / 1e6:.1f} MB, ended {du(ended) / 1e9:.2f} GB, "
              f"running {du(running) / 1e9:.2f} GB (journal "
              f"{(running / 'job.journal').stat().st_size / 1e9:.2f} GB)\n")  # fmt: skip
        cases = [
            ("status, small ended job", ["status", small.name]),
            ("status, big ended job", ["status", ended.name]),
            ("status, big running job", ["status", running.name]),
            ("status --verify, big ended job", ["status", ended.name, "--verify"]),
            ("status --verify, big running job", ["status", running.name, "--verify"]),
            ("list (3 jobs)", ["list"]),
        ]
        got: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
        for _ in range(a.rounds):
            for tree in trees:
                env = {**os.environ, "QSHPC_HOME": str(home), "PYTHONPATH": tree}
                for label, args in cases:
                    if "--verify" in args and "--verify" not in _help(env):
                        continue
                    cmd = [sys.executable, "-m", "qshpc", *args]
                    got.setdefault((label, tree), []).append(timed(cmd, env))
        print("| command | " + " | ".join(f"`{t}`" for t in trees) + " |")
        print("|---|" + "---|" * len(trees))
        for label, _args in cases:
            cells = []
            for tree in trees:
                runs = got.get((label, tree))
                if not runs:
                    cells.append("-")
                    continue
                wall = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs) / 1024
                cells.append(f"{wall:.2f} s, {rss:.0f} MB (exit {runs[0][2]})")
            print(f"| {label} | " + " | ".join(cells) + " |")
        for job, label in ((small, "small ended job"), (ended, "big ended job"),
                           (running, "big running job")):  # fmt: skip
            cells = []
            for tree in trees:
                env = {**os.environ, "QSHPC_HOME": str(home), "PYTHONPATH": tree}
                cells.append(f"{in_process(job, env) * 1000:.0f} ms")
            print(f"| status's store look in a warm process, {label} | " + " | ".join(cells) + " |")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        subprocess.run(["rm", "-rf", str(root)], check=False)


#: The store look `qshpc status` takes, in a process that has imported qshpc already:
#: median seconds of 3 (the tree's ``Job.info`` as its status command calls it).
_IN_PROCESS = """
import inspect, statistics, sys, time
from qshpc.client.job import Job, open_job
j = open_job(sys.argv[1])
deep = "deep" in inspect.signature(Job.info).parameters
kw = {"deep": True} if deep else {"verify": True}
j.info(**kw)
times = []
for _ in range(3):
    t = time.perf_counter()
    j.info(**kw)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def in_process(job: Path, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", _IN_PROCESS, job.name], env=env, check=True,
                         capture_output=True, text=True, cwd=env["PYTHONPATH"])  # fmt: skip
    return float(out.stdout.split()[-1])


_HELP: dict[str, str] = {}


def _help(env: dict[str, str]) -> str:
    key = env["PYTHONPATH"]
    if key not in _HELP:
        out = subprocess.run([sys.executable, "-m", "qshpc", "status", "--help"], env=env,
                             capture_output=True, text=True, cwd=key)  # fmt: skip
        _HELP[key] = out.stdout
    return _HELP[key]


if __name__ == "__main__":
    main()
