"""benchmarks/coldstart.py's notebook run: LocalClient(workers=2).run(...) from a fresh process.

As a notebook cell would: the circuits are in memory (loaded from QPY here),
the program is the seed's program_4.py; waits for the result and writes it.
Prints ``BENCH {...}`` with the time from ``run`` to the result.
"""

import json
import sys
import time
from pathlib import Path

from qiskit import qpy

from qshpc import LocalClient, Program

with open(sys.argv[1], "rb") as f:
    circuits = qpy.load(f)
program_file = Path(sys.argv[2])
t0 = time.perf_counter()
program = Program(
    title="coldstart", entrypoint=program_file.name, working_dir=str(program_file.parent)
)
job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
result = job.result()
t1 = time.perf_counter()
with open(sys.argv[3], "w") as f:
    json.dump({"results": [{str(k): v for k, v in d.items()} for d in result["results"]]}, f)
print("BENCH " + json.dumps({"run_to_result_s": t1 - t0, "job_dir": str(job.job_dir)}))
