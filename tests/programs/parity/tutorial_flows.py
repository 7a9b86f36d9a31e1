"""The quantum-serverless tutorials' program shapes, with only the import line changed.

- polling with get_refs_by_status until every task is ready,
- a task that fans out nested tasks and blocks in get on them,
- one put object shared by many tasks,
- try/except around get for a task that fails.
"""

# was: from quantum_serverless import distribute_task, get, get_arguments, get_refs_by_status, put, save_result
from qshpc import distribute_task, get, get_arguments, get_refs_by_status, put, save_result


@distribute_task(target={"cpu": 1})
def expval(weights, i):
    return sum(w * (i + 1) for w in weights)


@distribute_task()
def batch(weights, lo, hi):
    # nested tasks: they run on this worker, and get blocks on them here
    return get([expval(weights, i) for i in range(lo, hi)])


@distribute_task()
def risky(x):
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x


arguments = get_arguments()
weights = put(arguments.get("weights", [0.5, 0.25, 0.25]))  # shared by every task

refs = [expval(weights, i) for i in range(8)]
ready_count = 0
while True:
    ready, not_ready = get_refs_by_status(refs, num_returns=len(refs), timeout=0.05)
    ready_count = len(ready)
    if not not_ready:
        break
values = get(refs)
batches = get([batch(weights, lo, lo + 4) for lo in (0, 4)])

recovered = []
for x in (1, -2, 3):
    try:
        recovered.append(get(risky(x)))
    except ValueError as err:
        recovered.append(f"recovered: {err.exc_type}")

save_result({"values": values, "batches": batches, "ready": ready_count, "recovered": recovered})
