"""Squares of 0..n-1 with per-task rank/host, nested calls, put refs and status updates."""

from qshpc import distribute_task, get, get_arguments, put, rank_info, save_result, update_status


@distribute_task()
def square(x):
    return x * x


@distribute_task()
def where(x):
    info = rank_info()
    return (x, info.rank, info.host)


@distribute_task()
def nested_sum(n):
    return sum(get([square(i) for i in range(n)]))


@distribute_task()
def pick(table, i):
    return table[i]


n = get_arguments().get("n", 20)
update_status("squaring")
squares = get([square(i) for i in range(n)], progress=True)
ranks = sorted({r for _, r, _ in get([where(i) for i in range(n)])})
table = put({i: i * 10 for i in range(n)})
picked = get([pick(table, i) for i in range(3)])
save_result(
    {
        "squares": squares,
        "ranks": ranks,
        "nested": get(nested_sum(5)),
        "picked": picked,
        "lam": get(distribute_task()(lambda y: y + 1)(41)),
    }
)
