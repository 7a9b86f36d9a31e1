"""`make demo`: the seed notebook's flow on local MPI ranks (no cluster needed).

Builds 5 random 2-qubit circuits, runs examples/program_4.py (the seed program)
with 2 worker ranks, and prints the job id, where the result went, and the result.
"""

from __future__ import annotations

from pathlib import Path

from qiskit.circuit.random import random_circuit

from qshpc import LocalClient, Program

circuits = [random_circuit(2, 2) for _ in range(5)]
for circuit in circuits:
    circuit.measure_all()

program = Program(
    title="Program with distributed workflow",
    entrypoint="program_4.py",
    working_dir=str(Path(__file__).parent),
)
job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
print(f"job id:  {job.job_id}")
result = job.result()
print(f"status:  {job.status()}")
print(f"store:   {job.job_dir / 'job.h5'}")
print(f"logs:    {job.job_dir / 'logs'}")
print(f"result:  {result}")
print(f"again:   qshpc status {job.job_id}; qshpc result {job.job_id} --json")
