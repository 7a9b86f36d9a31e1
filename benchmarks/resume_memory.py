"""Rank 0's memory and time at ``--resume`` (and at a first run) of a job of many results.

Session 27, fixJ: a resume read and decoded every stored result before the program
ran, and a first run held every result under ``QSHPC_RESULT_MEMORY_MAX`` while the
program kept its reference. Since, a resume leaves results over that limit, and those
past ``QSHPC_RESULT_MEMORY_TOTAL`` loaded in all, in the store (checked when the call
would reuse one, read back at each ``get``); a first run holds them up to the total.

The program: N calls returning an array of MB MiB (``np.full``), their references kept
in a list, a ``get`` of each in turn (checked), a run that FAILS at its end (a job to
resume). The first checkout makes the job once; then for each round and each checkout
(its root goes first on ``PYTHONPATH``, ``--workers 1``), a copy of that job is resumed,
and a first run is made. Prints rank 0's peak RSS (``ru_maxrss``) as the program starts
(after the resume read the store) and at its end, the program's calls-and-gets time,
and the command's wall time.

Run: python benchmarks/resume_memory.py CHECKOUT [CHECKOUT ...]
     (env: N=2000 MB=1 ROUNDS=2; a checkout ``PATH:NAME=VALUE`` runs with that setting)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = """
import json, os, resource, time
import numpy as np
from qshpc import distribute_task, get, save_result

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

START = peak()
N, SIZE = int(os.environ["N"]), int(os.environ["SIZE"])

@distribute_task()
def t(i, size):
    return np.full(size // 8, float(i) + 0.125)

t0 = time.perf_counter()
refs = [t(i, SIZE) for i in range(N)]
bad = 0
for i, r in enumerate(refs):
    a = get(r)
    bad += not (a.shape == (SIZE // 8,) and bool((a == i + 0.125).all()))
    del a
dt = time.perf_counter() - t0
save_result(bad)
print("BENCH " + json.dumps({"start_mib": START, "peak_mib": peak(), "calls_s": dt, "bad": bad}))
if os.environ.get("FAIL_AT_END"):
    raise SystemExit("fail at end")
"""


def _run(checkout: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    tree, _, setting = checkout.partition(":")
    env = {**os.environ, **env, "PYTHONPATH": tree}
    if setting:
        name, _, value = setting.partition("=")
        env[name] = value
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "qshpc", "run", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    wall = time.perf_counter() - t0
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            data: dict[str, float] = json.loads(line[6:])
            assert data["bad"] == 0, data
            return {**data, "wall_s": wall}
    raise RuntimeError(f"no figures from {cmd}: {out.stdout[-800:]} {out.stderr[-800:]}")


def main() -> None:
    checkouts = sys.argv[1:] or [str(Path(__file__).resolve().parent.parent)]
    n, mb = int(os.environ.get("N", "2000")), int(os.environ.get("MB", "1"))
    rounds = int(os.environ.get("ROUNDS", "2"))
    env = {"N": str(n), "SIZE": str(mb << 20)}
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        prog = Path(tmp) / "prog.py"
        prog.write_text(PROGRAM)
        job, copy = Path(tmp) / "job", Path(tmp) / "copy"
        fail = {**env, "FAIL_AT_END": "1"}
        _run(
            checkouts[0].partition(":")[0],
            [str(prog), "--workers", "1", "--job-dir", str(job)],
            fail,
        )
        for _ in range(rounds):
            for c in checkouts:
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(job, copy)
                got = _run(c, [str(prog), "--resume", str(copy)], env)
                rows.setdefault((c, "resume"), []).append(got)
                print(c, "resume", got, flush=True)
                shutil.rmtree(copy)
                got = _run(c, [str(prog), "--workers", "1", "--job-dir", str(copy)], env)
                rows.setdefault((c, "first"), []).append(got)
                print(c, "first run", got, flush=True)
    print()
    print(
        "| checkout | run | rank 0 peak RSS at start, MiB | at end, MiB | calls + gets s | wall s |"
    )
    print("|---|---|---|---|---|---|")
    for (c, what), runs in rows.items():
        cols = [", ".join(f"{r[k]:.{d}f}" for r in runs) for k, d in
                (("start_mib", 0), ("peak_mib", 0), ("calls_s", 1), ("wall_s", 1))]  # fmt: skip
        print(f"| {c} | {what} {n} x {mb} MiB | {' | '.join(cols)} |")


if __name__ == "__main__":
    main()
