"""Forty 0.2 s tasks: long enough to signal the command half-way."""

import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def f(x):
    time.sleep(0.2)
    return x


save_result(get([f(i) for i in range(40)]))
