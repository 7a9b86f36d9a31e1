"""Pools started and ended at once, many times, in the program and in tasks: a pool's
``__exit__`` sends SIGTERM to workers that may not have finished forking yet."""

import multiprocessing as mp
import sys

from qshpc import distribute_task, get, save_result

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def churn(rounds: int) -> int:
    ctx = mp.get_context("fork")
    for _ in range(rounds):
        with ctx.Pool(2):
            pass
    return rounds


@distribute_task()
def f(rounds: int) -> int:
    return churn(rounds)


mine = churn(ROUNDS)
save_result({"r": get([f(ROUNDS) for _ in range(4)]), "mine": mine})
