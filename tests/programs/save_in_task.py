"""A task calls save_result (only the program may): that task fails; the program goes on."""

from qshpc import TaskError, distribute_task, get, save_result


@distribute_task()
def work(i):
    if i == 1:
        save_result({"from": "a task"})
    return i


try:
    get([work(i) for i in range(3)])
except TaskError as err:
    print("task failed:", err.remote_traceback.strip().splitlines()[-1], flush=True)
save_result({"from": "the program"})
