"""40 slow-ish tasks in batches of 8; every execution is logged to count re-runs."""

import os
import time

from qshpc import distribute_task, get, get_arguments, save_result

log = get_arguments()["log"]


@distribute_task()
def step(i):
    with open(log, "a") as f:
        f.write(f"{i}\n")
    time.sleep(0.05)
    return i * i


results = []
for start in range(0, 40, 8):
    results += get([step(i) for i in range(start, start + 8)])
    print("done up to", start + 8, flush=True)
save_result({"results": results, "pid": os.getpid() > 0})
