"""Task 3 raises; the others finish; the program lets the TaskError propagate."""

from qshpc import distribute_task, get, save_result


@distribute_task()
def work(i):
    if i == 3:
        raise ValueError(f"bad input {i}")
    return i


refs = [work(i) for i in range(8)]
ok = [r.result() for r in refs if r.task_id != "3"]
print("finished before the failure:", ok, flush=True)
save_result(get(refs))
