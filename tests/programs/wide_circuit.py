"""One task runs a circuit over k processes of its own (an MPI Aer step); small tasks go on.

Arguments: ``qubits`` (default 12), ``ranks`` (the step's processes, default 2),
``nodes`` (to spread them over, under Slurm; default none), ``hold`` (true: the task is
declared ``target={"ranks": ranks}``, so the job holds that many ranks for it and
``run_circuits`` takes its rank count from the task). The saved result has
the step's errors against Qiskit's exact Statevector, its hosts, and the small tasks'.
"""

from qshpc import distribute_task, get, get_arguments, save_result

args = get_arguments()


def wide(n, ranks, nodes):
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    c = QuantumCircuit(n)
    for q in range(n):
        c.ry(0.1 + 0.05 * q, q)
    for q in range(n - 1):
        c.cx(q, q + 1)
    c.rz(0.3, n - 1)
    c.cx(n - 1, 0)
    terms = [("X" + "Z" * (n - 2) + "Y", 0.5, 0.0), ("Z" * n, 0.25, 0.0)]
    saves = [[Save("probabilities", [0, n - 1], "p"),
              Save("expectation_value", list(range(n)), "ev", terms)]]  # fmt: skip
    step = run_circuits([c], ranks, nodes=nodes, timeout=300, saves=saves)
    exact = Statevector(c)
    obs = SparsePauliOp([t[0] for t in terms], [t[1] for t in terms])
    return {
        "ranks": step.result["metadata"]["num_processes_per_experiments"],
        "hosts": step.hosts(),
        "prob_err": float(abs(step.probabilities(0, "p") - exact.probabilities([0, n - 1])).max()),
        "ev_err": abs(step.value(0, "ev") - float(exact.expectation_value(obs).real)),
        "launcher": step.command[0].rsplit("/", 1)[-1],
    }


@distribute_task()
def square(i):
    return i * i


k = args.get("ranks", 2)
if args.get("hold"):

    @distribute_task(target={"ranks": k})
    def held_wide(n, nodes):
        return wide(n, None, nodes)  # k from the task: current_task().step

    refs = [held_wide(args.get("qubits", 12), args.get("nodes"))]
else:
    refs = [distribute_task()(wide)(args.get("qubits", 12), k, args.get("nodes"))]
small = [square(i) for i in range(16)]
save_result({"wide": get(refs[0]), "small": get(small)})
