"""``with multiprocessing.Pool() as pool`` in a task and in the program (its exit: terminate)."""

import math
import multiprocessing as mp

from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i: int) -> int:
    with mp.get_context("fork").Pool(2) as pool:  # __exit__: SIGTERM to the pool's workers
        return sum(pool.map(math.factorial, range(i + 3)))


with mp.get_context("fork").Pool(2) as pool:
    mine = pool.map(math.factorial, range(4))
save_result({"r": get([f(i) for i in range(4)]), "mine": mine})
