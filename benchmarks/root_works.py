"""Should rank 0 run queued calls while it waits in `get`? Measured, same run, same ranks.

`QSHPC_ROOT_WORKS=0` (default): rank 0's program thread sleeps on a condition variable.
`QSHPC_ROOT_WORKS=1`: it takes queued calls from the back of the queue and runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def run(ranks: int, kind: str, n: int, root_works: str, tmp: str) -> float:
    cmd = [
        _mpiexec(),
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "qshpc",
        "run",
        str(HERE / "_root_prog.py"),
        "--job-dir",
        f"{tmp}/{kind}-{ranks}-{root_works}",
        "--",
        kind,
        str(n),
    ]
    env = {**os.environ, "QSHPC_ROOT_WORKS": root_works}
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=env, check=True
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    return float(json.loads(line[6:])["seconds"])


def main() -> None:
    print(
        "| ranks | tasks | rank 0 sleeps (s) | rank 0 works (s) | auto (s) | works / sleeps | auto / sleeps |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for ranks, kind, n in (
            (2, "burn", 400),
            (3, "burn", 400),
            (2, "tiny", 100_000),
            (3, "tiny", 100_000),
        ):
            a = run(ranks, kind, n, "0", tmp)
            b = run(ranks, kind, n, "1", tmp)
            c = run(ranks, kind, n, "auto", tmp)
            label = "CPU-bound ~4 ms" if kind == "burn" else "tiny"
            print(
                f"| {ranks} | {n:,} {label} | {a:.2f} | {b:.2f} | {c:.2f} | {b / a:.2f} | {c / a:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
