"""Used by benchmarks/idle_cpu.py: one task sleeps while the other ranks wait."""

import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def nap(s):
    time.sleep(s)
    return s


get(nap(0.01))
t0, c0 = time.perf_counter(), time.process_time()
get(nap(3.0))
print(f"RANK0 wall={time.perf_counter() - t0:.2f} cpu={time.process_time() - c0:.3f}")
save_result(None)
