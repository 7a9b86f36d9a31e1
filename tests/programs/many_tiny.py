"""n tiny tasks of two functions; every 1000th fails on its first try and succeeds on its retry."""

from qshpc import current_task, distribute_task, get, get_arguments, save_result


@distribute_task(retries=1)
def tiny(i):
    task = current_task()
    if i % 1000 == 7 and task is not None and task.attempt == 1:
        raise RuntimeError(f"flaky {i}")
    return i


@distribute_task()
def other(i):
    return -i


n = int(get_arguments().get("n", 1000))
refs = [tiny(i) if i % 4 else other(i) for i in range(n)]
save_result({"sum": sum(get(refs))})
