"""Many tasks that sleep: a long job whose results arrive steadily (node-failure test).

Arguments: ``n`` tasks (default 400), ``sleep`` seconds each (default 0.5).
"""

import time

from qshpc import distribute_task, get, get_arguments, rank_info, save_result, update_status


@distribute_task()
def nap(i: int, seconds: float):
    time.sleep(seconds)
    info = rank_info()
    return {"i": i, "host": info.host, "rank": info.rank}


args = get_arguments()
n, seconds = int(args.get("n", 400)), float(args.get("sleep", 0.5))
update_status(f"{n} tasks of {seconds} s")
rows = get([nap(i, seconds) for i in range(n)])
save_result({"tasks": rows})
