"""Tasks of 0.2 s, in waves, for a few seconds: a job to look at while it runs.

Arguments: ``waves`` (10); ``gate``, a file: from wave ``hold`` (0) on, a step waits until
the file exists, then takes no time (a test holds the job running as long as it needs,
then lets it end at once).
"""

import os
import time

from qshpc import distribute_task, get, get_arguments, save_result


@distribute_task()
def step(i, gate=None):
    if gate is None:
        time.sleep(0.2)
    else:
        while not os.path.exists(gate):
            time.sleep(0.05)
    return i


args = get_arguments()
waves = int(args.get("waves", 10))
gate, hold = args.get("gate"), int(args.get("hold", 0))
out = []
for w in range(waves):
    held = gate if gate is not None and w >= hold else None
    out += get([step(w * 4 + i, held) for i in range(4)])
save_result({"steps": len(out)})
