"""benchmarks/coldstart.py's plain single process: QPY in, one pass manager, one Aer batch, JSON out."""

import json
import sys

from _cold_task import sample_all
from qiskit import qpy

with open(sys.argv[1], "rb") as f:
    circuits = qpy.load(f)
results = sample_all(circuits)
with open(sys.argv[2], "w") as f:
    json.dump({"results": [{str(k): v for k, v in d.items()} for d in results]}, f)
