"""Many 0.2 s tasks: long enough to cancel half-way."""

import time

from qshpc import distribute_task, get, save_result, update_status


@distribute_task()
def slow(i):
    time.sleep(0.2)
    return i


done = []
for start in range(0, 400, 4):
    done += get([slow(i) for i in range(start, start + 4)])
    update_status(f"{len(done)} of 400")
save_result(done)
