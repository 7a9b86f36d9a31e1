"""benchmarks/coldstart.py's notebook run: LocalClient(workers=2).run(...) from a fresh process.

As a notebook cell would: the circuits are in memory (loaded from QPY here),
the program is the seed's program_4.py; waits for the result and writes it.
Prints ``BENCH {...}`` with the time from ``run`` to the result
(``run_to_result_s``) and the CPU seconds spent meanwhile by this process
and the ones it started (``run_to_result_cpu_s``; this process's own:
``run_to_result_own_cpu_s``): what a notebook kernel
that already imported qiskit and qshpc and holds the circuits waits for.
"""

import json
import resource
import sys
import time
from pathlib import Path

from qiskit import qpy

from qshpc import LocalClient, Program

with open(sys.argv[1], "rb") as f:
    circuits = qpy.load(f)
program_file = Path(sys.argv[2])


def own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own_cpu() + kids.ru_utime + kids.ru_stime


c0, o0 = cpu(), own_cpu()
at = time.time()
t0 = time.perf_counter()
program = Program(
    title="coldstart", entrypoint=program_file.name, working_dir=str(program_file.parent)
)
job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
result = job.result()
t1 = time.perf_counter()
c1, o1 = cpu(), own_cpu()
with open(sys.argv[3], "w") as f:
    json.dump({"results": [{str(k): v for k, v in d.items()} for d in result["results"]]}, f)
bench = {
    "run_to_result_s": t1 - t0,
    "run_to_result_cpu_s": c1 - c0,
    "run_to_result_own_cpu_s": o1 - o0,
    "run_at": at,
    "job_dir": str(job.job_dir),
}
print("BENCH " + json.dumps(bench))
