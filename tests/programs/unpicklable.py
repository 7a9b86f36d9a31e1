"""A task returns something that cannot be serialized."""

import threading

from qshpc import distribute_task, get, save_result


@distribute_task()
def lock(i):
    return threading.Lock()


save_result(get(lock(1)))
