"""A task whose short calls a worker runs in a cooperative group (their steps share runs);
one grouped call raises SystemExit inside its step and one after it."""

import sys

from qshpc import TaskError, distribute_task, get, save_result
from qshpc.task.coop import together


def double(items):
    if any(i == -1 for i in items):
        sys.exit(4)  # the shared step itself
    return [2 * i for i in items]


@distribute_task()
def step(i):
    value = together("double", double, i)
    if i == 13:
        raise SystemExit(5)  # the call, after its step
    return value


get([step(i) for i in range(8)])  # short calls with a step: grouped from now on
refs = [step(i) for i in (10, 11, -1, 13, 14, 15)]
out = []
for ref in refs:
    try:
        out.append(ref.result())
    except TaskError as err:
        out.append(err.exc_type)
save_result(out)
