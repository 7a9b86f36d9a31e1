"""A seed-style program whose tasks run big circuits: which device and GPU each task used."""

import socket

from qiskit.circuit.random import random_circuit

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import Sampler
from qshpc.task import context


@distribute_task()
def sample(n: int, seed: int):
    c = random_circuit(n, 12, seed=seed, measure=True)
    r = Sampler().run(c).result()
    dist = r.quasi_dists[0]
    meta = r.metadata[0] if r.metadata else {}
    top = max(dist.items(), key=lambda kv: kv[1])
    return {
        "top": top,
        "meta": {k: str(v) for k, v in dict(meta).items()},
        "rank": context.rank_info().rank,
        "host": socket.gethostname(),
    }


args = get_arguments()
n = int(args.get("n", 24))
k = int(args.get("k", 6))
save_result({"results": get([sample(n, s) for s in range(k)])})
