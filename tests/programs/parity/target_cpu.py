"""Point 7: ``target={"cpu": k}`` is the threads a task gets, on a rank that has them."""

from qshpc import (
    ResourceError,
    current_task,
    distribute_task,
    get,
    get_arguments,
    rank_info,
    save_result,
)


@distribute_task(target={"cpu": 1})
def one():
    from qshpc.aer.simulator import sim_spec

    return [current_task().cpus, sim_spec().threads, rank_info().rank]


@distribute_task()
def default():
    return [current_task().cpus, rank_info().cpus]


out = {"one": get(one()), "default": get(default())}
big = get_arguments().get("big", 64)


@distribute_task(target={"cpu": big})
def greedy():
    return rank_info().rank


try:
    greedy()
    out["refused"] = None
except ResourceError as exc:
    out["refused"] = str(exc)
want = get_arguments().get("placed")
if want:

    @distribute_task(target={"cpu": want})
    def placed():
        return [rank_info().rank, current_task().cpus]

    out["placed"] = get([placed() for _ in range(6)])
save_result(out)
