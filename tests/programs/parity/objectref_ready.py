"""Point 3: ObjectRefs from put are ready for wait, get_refs_by_status, as_completed, futures."""

import concurrent.futures as cf

from qshpc import as_completed, distribute_task, get, get_refs_by_status, put, save_result, wait


@distribute_task()
def add(x, y):
    return x + y


a, b = put(1), put(2)
done, pending = wait([a, b], num_returns=2, timeout=0)
ready, not_ready = get_refs_by_status([a, add(a, b)], num_returns=2, timeout=30)
seen = list(as_completed([a, b, add(a, 5)], timeout=30))
fdone, fnot = cf.wait([a, b], timeout=0)
save_result(
    {
        "wait": [len(done), len(pending)],
        "by_status": [len(ready), len(not_ready)],
        "as_completed": len(seen),
        "futures": [len(fdone), len(fnot)],
        "values": get([a, b]),
        "result": [a.result(), a.done()],
        "sum": get(add(a, b)),
    }
)
