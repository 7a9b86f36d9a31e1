"""Rank 0's program ends its process with os._exit(3) after one task (no store final)."""

import os

from qshpc import distribute_task, get


@distribute_task()
def f(i: int) -> int:
    return i


get(f(1))
os._exit(3)
