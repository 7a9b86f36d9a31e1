"""qiskit-serverless's docker-test pattern (review31 F3): a decorated function that uses a
module beside this script, run without working_dir. ``python caller.py local|slurm``."""

import sys

from helper_fix31 import triple

from qshpc import LocalClient, SlurmClient, distribute_qiskit_function, distribute_task, get

if sys.argv[1] == "local":
    client = LocalClient(workers=1)
else:
    client = SlurmClient(nodes=1, ntasks_per_node=2, time_min=5)


@distribute_task()
def task(x):
    return triple(x)  # on a worker: helper_fix31 imported there


@distribute_qiskit_function(client)
def function_with_modules(n):
    return {"main": triple(n), "tasks": get([task(i) for i in range(n)])}


job = function_with_modules(n=3)
print("RESULT", job.result(), job.status())
