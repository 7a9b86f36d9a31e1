"""Rank 0's program and one task each start a thread that never ends; another ends late."""

import atexit
import threading
import time

from qshpc import distribute_task, get, save_result


def forever() -> None:
    while True:
        time.sleep(0.2)


def late() -> None:
    time.sleep(0.5)
    print("the late thread ended", flush=True)


@distribute_task()
def work(i: int) -> int:
    if i == 0:
        threading.Thread(target=forever, name="task-watcher").start()
    return i


atexit.register(print, "the program's atexit handler ran", flush=True)
threading.Thread(target=forever, name="program-watcher").start()
threading.Thread(target=late, name="late").start()
save_result({"r": get([work(i) for i in range(4)])})
