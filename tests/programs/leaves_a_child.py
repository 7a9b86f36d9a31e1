"""Rank 0's program and one task each start a process they leave running."""

import subprocess
import sys

from qshpc import distribute_task, get, save_result

LINGER = sys.argv[1] if len(sys.argv) > 1 else "31.5"


@distribute_task()
def work(i: int) -> int:
    if i == 0:
        subprocess.Popen(["sleep", LINGER])  # holds the worker's stdout and stderr
    return i


subprocess.Popen(["sleep", LINGER])
print("the program's own line", flush=True)
save_result({"r": get([work(i) for i in range(4)])})
