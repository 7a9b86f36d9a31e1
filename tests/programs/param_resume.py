"""Tasks on a parameterized circuit built by the program; fails once after them (a marker file)."""

from pathlib import Path

from qiskit.circuit import Parameter, QuantumCircuit

from qshpc import distribute_task, get, get_arguments, save_result

args = get_arguments()


@distribute_task()
def angle(circuit, value):
    with open(args["log"], "a") as f:
        f.write(f"{value}\n")
    bound = circuit.assign_parameters({circuit.parameters[0]: value})
    return float(bound.data[0].operation.params[0])


theta = Parameter("theta")  # a new UUID in every run of the program
qc = QuantumCircuit(1)
qc.rx(theta, 0)
angles = get([angle(qc, v) for v in (0.5, 1.5, 2.5)])
marker = Path(args["fail_once"])
if marker.exists():
    marker.unlink()
    raise RuntimeError("failing once after the tasks")
save_result({"angles": angles})
