"""benchmarks/coldstart.py's one-task job: one trivial call, its result saved."""

from qshpc import distribute_task, get, save_result


@distribute_task()
def inc(x: int) -> int:
    return x + 1


save_result({"value": get(inc(1))})
