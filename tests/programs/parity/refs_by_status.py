"""Point 1: polling with get_refs_by_status (quantum-serverless 0.10's ``ray.wait``)."""

import time

from qshpc import distribute_task, get, get_refs_by_status, put, save_result


@distribute_task()
def slow_square(x, delay):
    time.sleep(delay)
    return x * x


refs = [slow_square(i, 0.05 * (5 - i)) for i in range(6)]
steps = []
results = []
pending = refs
while pending:
    ready, pending = get_refs_by_status(pending)  # num_returns=1: exactly one at a time
    steps.append(len(ready))
    results.extend(get(ready))

ready, not_ready = get_refs_by_status(refs, num_returns=len(refs), timeout=None)
objs, rest = get_refs_by_status([put(1), refs[0]], num_returns=2, timeout=0)
save_result(
    {
        "steps": steps,
        "results": sorted(results),
        "ready": len(ready),
        "not_ready": len(not_ready),
        "objs": len(objs),
        "rest": len(rest),
    }
)
