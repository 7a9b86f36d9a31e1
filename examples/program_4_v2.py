# program_4.py (the seed program) written with Qiskit 2's SamplerV2.
#
# Qiskit 2 removed the V1 Sampler the seed calls; qshpc.aer.SamplerV2 is a real
# qiskit.primitives.BaseSamplerV2 whose results are Qiskit's own. Each task
# samples one circuit (transpiled for Aer on its rank: random circuits hold
# gates Aer rejects) and returns its counts; with `--seed` the counts are the
# same on any number of ranks.
#
# The same fan-out without writing a task: on rank 0,
#     results = SamplerV2().run(circuits).result()
# sends one task per PUB itself (a PUB with many parameter rows is cut into
# blocks of rows so every worker gets some).
#
# Run:  qshpc run examples/program_4_v2.py --arguments args.h5 --seed 7

from qiskit import QuantumCircuit

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import SamplerV2


@distribute_task()
def distributed_sample(circuit: QuantumCircuit):
    """Distributed task that returns the counts of a given circuit."""
    return SamplerV2().run([circuit]).result()[0].join_data().get_counts()


arguments = get_arguments()
circuits = arguments.get("circuits")


# run distributed tasks as async function
# we get task references as a return type
sample_task_references = [distributed_sample(circuit) for circuit in circuits]

# now we need to collect results from task references
results = get(sample_task_references)

save_result({"results": results})
