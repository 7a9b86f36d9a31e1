"""Prints lines for filtered_logs, writes a file to the data folder, saves a result."""

from qshpc import data_dir, distribute_task, get, get_arguments, save_result


@distribute_task()
def hello(i):
    print(f"hello from task {i}", flush=True)
    return i


n = get_arguments().get("n", 3)
print("program starts", flush=True)
values = get([hello(i) for i in range(n)])
print("WARNING: not really", flush=True)
(data_dir() / f"produced-{n}.txt").write_text(f"{n} values\n")
save_result({"values": values})
