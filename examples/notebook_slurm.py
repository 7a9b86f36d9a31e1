"""The seed notebook ("Distributed workflows in programs") as a script, on Slurm.

Only the import and provider lines differ from the seed: `SlurmClient` replaces
`QuantumServerless(GatewayProvider(...))`, and `run` replaces `run_program`.
Run it from the repository root on a Slurm login node (or against the dev
cluster: `make slurm-up`, then `eval "$(bash slurm/devcluster.sh env)"`):

    python examples/notebook_slurm.py
"""

# In [1]:
from qshpc import Program, SlurmClient

# In [2]:
serverless = SlurmClient(nodes=1, ntasks_per_node=2)
print(serverless)

# Let's create list of random circuit which we will be using as arguments
# In [12]:
from qiskit.circuit.random import random_circuit  # noqa: E402

circuits = [random_circuit(2, 2) for _ in range(5)]
[circuit.measure_all() for circuit in circuits]
print(circuits)

# Run program as usual
# In [13]:
program = Program(
    title="Program with distributed workflow",
    entrypoint="program_4.py",
    working_dir="./examples/",
)

job = serverless.run(program, arguments={"circuits": circuits})
print(job)

# In [18]:
print(job.status())

# In [20]:
print(job.result())
print(job.status())
