"""The program gives up on a stuck task (get with a timeout) and saves its result."""

import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def stuck(i):
    time.sleep(3600)
    return i


ref = stuck(0)
try:
    get(ref, timeout=2)
except TimeoutError:
    pass
save_result({"gave_up": True})
