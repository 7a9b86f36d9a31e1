"""benchmarks/coldstart.py's executorlib run: one submit per circuit on 2 block-allocated workers."""

import json
import sys

from _cold_task import sample
from executorlib import SingleNodeExecutor
from qiskit import qpy

with open(sys.argv[1], "rb") as f:
    circuits = qpy.load(f)
with SingleNodeExecutor(max_workers=2, block_allocation=True) as exe:
    futures = [exe.submit(sample, c) for c in circuits]
    results = [f.result() for f in futures]
with open(sys.argv[2], "w") as f:
    json.dump({"results": [{str(k): v for k, v in d.items()} for d in results]}, f)
