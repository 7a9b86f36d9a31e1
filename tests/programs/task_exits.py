"""Tasks that raise SystemExit, KeyboardInterrupt and GeneratorExit, and one that calls
save_result; the program catches each TaskError, then runs more calls on the same workers."""

import os
import sys

from qshpc import TaskError, distribute_task, get, rank_info, save_result


@distribute_task()
def bad(kind):
    if kind == "exit":
        sys.exit(3)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "generator":
        raise GeneratorExit
    if kind == "save":
        save_result({"from": "a task"})
    return (kind, rank_info().rank, os.getpid())


caught = {}
for kind in ("exit", "interrupt", "generator", "save"):
    try:
        get(bad(kind))
    except TaskError as err:
        caught[kind] = [err.exc_type, err.remote_traceback.strip().splitlines()[-1]]
after = get([bad("ok") for _ in range(8)])
save_result({"caught": caught, "after": [[r, p] for _, r, p in after]})
