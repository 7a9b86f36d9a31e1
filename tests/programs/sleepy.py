"""Twenty 0.15 s tasks: a couple of seconds of progress to watch."""

import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def nap(i):
    time.sleep(0.15)
    return i


save_result(get([nap(i) for i in range(20)]))
