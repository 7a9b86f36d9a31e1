"""A task and the program leave children forked without exec (os.fork, multiprocessing)
running for argv[2] s; each writes its pid into the folder argv[1] (the test ends them)."""

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from qshpc import distribute_task, get, save_result

PIDS, LINGER = Path(sys.argv[1]), float(sys.argv[2])


def linger() -> None:
    (PIDS / str(os.getpid())).touch()
    time.sleep(LINGER)


@distribute_task()
def f(i: int) -> int:
    if i == 0:
        if os.fork() == 0:
            linger()
            os._exit(0)
        mp.get_context("fork").Process(target=linger, name="task-helper").start()
    return i


if os.fork() == 0:
    linger()
    os._exit(0)
save_result({"r": get([f(i) for i in range(4)])})
