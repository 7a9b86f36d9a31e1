"""Two functions, flaky tasks that succeed on their retry, one task that always fails.

19 attempts: 12 ``square``, 3 ``flaky`` twice (the first try fails), 1 ``broken``
(fails; the program catches it). The result holds counts, so it plots.
"""

import time

from qshpc import TaskError, current_task, distribute_task, get, save_result, update_status


@distribute_task()
def square(x):
    time.sleep(0.02)
    return x * x


@distribute_task(retries=1)
def flaky(i):
    task = current_task()
    if task is not None and task.attempt == 1:
        raise RuntimeError(f"flaky {i} fails on its first try")
    return i


@distribute_task()
def broken(i):
    raise ValueError(f"bad input {i}")


update_status("squares")
squares = get([square(i) for i in range(12)])
update_status("flaky ones")
flaky_ones = get([flaky(i) for i in range(3)])
try:
    get(broken(7))
    caught = None
except TaskError as exc:
    caught = exc.exc_type
save_result(
    {"squares": squares, "flaky": flaky_ones, "caught": caught, "counts": {"00": 3, "11": 5}}
)
