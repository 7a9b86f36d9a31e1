"""A task returns a few hundred MB; a put() object of the same size goes to the worker."""

import numpy as np

from qshpc import distribute_task, get, get_arguments, put, save_result

mb = get_arguments().get("mb", 320)


@distribute_task()
def make(n):
    a = np.arange(n, dtype=np.float64)
    return a


@distribute_task()
def total(arr):
    return float(arr[-1]), int(arr.size)


n = mb * 1024 * 1024 // 8
big = get(make(n))
assert big.nbytes == n * 8
last, size = get(total(put(big)))
save_result({"last": last, "size": size, "array": big})
