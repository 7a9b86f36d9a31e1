"""Tasks of 0.2 s, in waves, for a few seconds: a job to look at while it runs."""

import time

from qshpc import distribute_task, get, get_arguments, save_result


@distribute_task()
def step(i):
    time.sleep(0.2)
    return i


waves = int(get_arguments().get("waves", 10))
out = []
for w in range(waves):
    out += get([step(w * 4 + i) for i in range(4)])
save_result({"steps": len(out)})
