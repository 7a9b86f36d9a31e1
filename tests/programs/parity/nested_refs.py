"""Point 4: references at any depth resolve to their own value when the task calls get on them.

Workers place objects of their own first (an id scheme shared by the ranks would
hand a task a worker's object in place of rank 0's: a wrong value, silently).
Then rank 0's objects and task results travel nested 2, 3 and 4 deep, in
lists, tuples, dicts, sets and a class defined here, and through a closure.
"""

from qshpc import distribute_task, get, get_arguments, put, save_result


class Box:
    def __init__(self, ref):
        self.ref = ref


@distribute_task()
def worker_puts(tag, n):
    """Objects placed on a worker; nested calls there read them back."""
    refs = [put(f"{tag}-{i}") for i in range(n)]
    return get([read_nested([[r]]) for r in refs])


@distribute_task()
def read_nested(c):
    return get(c[0][0])


@distribute_task()
def read_deep(x):
    return [
        get(x["list"][0][0]),
        get(x["tuple"][1][0][0]),
        get(x["dict"]["a"]["b"]["c"]),
        get(next(iter(x["set"]))),
        get(x["box"].ref),
        get(x["task"][0][0]),
    ]


@distribute_task()
def plus_one(v):
    return v + 1


table = put({i: f"table-{i}" for i in range(50)})


@distribute_task()
def look(i):
    return get(table)[i]  # a reference captured by the function, not passed


rounds = get_arguments().get("rounds", 4)
per_round = get_arguments().get("per_round", 8)
wrong = []
hits = 0
for rnd in range(rounds):
    # Workers place objects numbered like rank 0's next ones.
    got = get([worker_puts(f"w{rnd}.{k}", 4) for k in range(4)])
    for k, values in enumerate(got):
        if values != [f"w{rnd}.{k}-{i}" for i in range(4)]:
            wrong.append(("worker", rnd, k, values))
    mine = [put(f"r{rnd}-{i}") for i in range(per_round)]
    first = get([read_nested([[m]]) for m in mine])
    for i, v in enumerate(first):
        hits += 1
        if v != f"r{rnd}-{i}":
            wrong.append(("depth2", rnd, i, v))
    deep = get(
        [
            read_deep(
                {
                    "list": [[m]],
                    "tuple": (0, [[m]]),
                    "dict": {"a": {"b": {"c": m}}},
                    "set": {m},
                    "box": Box(m),
                    "task": [[plus_one(i)]],
                }
            )
            for i, m in enumerate(mine)
        ]
    )
    for i, vs in enumerate(deep):
        hits += 1
        want = [f"r{rnd}-{i}"] * 5 + [i + 1]
        if vs != want:
            wrong.append(("deep", rnd, i, vs))

looked = get([look(i) for i in (0, 7, 49)])
save_result({"wrong": wrong, "hits": hits, "looked": looked})
