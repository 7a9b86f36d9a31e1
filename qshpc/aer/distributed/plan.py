"""When a circuit runs distributed, over how many ranks, and what is missing when it cannot.

``SamplerV2``/``EstimatorV2`` (:mod:`qshpc.primitives`) ask :func:`ranks_for`
for each PUB's circuit: 1 runs it on one rank as always; k > 1 splits its
statevector over k ranks (a ``target={"ranks": k}`` call of the job, which
starts a k-process step of the MPI Aer build). ``QSHPC_DISTRIBUTE`` decides:

* ``auto`` (default): only a circuit wider than one rank's simulator holds
  (Aer's limit for this node's memory), over the fewest ranks whose chunk fits
  (:func:`ranks_needed`);
* ``never``: none; such a circuit is refused with the memory it needs;
* ``always``: every circuit, over at least 2 ranks;
* ``N`` (qubits): circuits of N qubits or more, like CUDA-Q's threshold
  (``CUDAQ_MGPU_NQUBITS_THRESH``); narrower ones as ``auto``.

Only the CPU statevector method distributes (Aer's chunks). Nothing here
imports qiskit or Aer.
"""

from __future__ import annotations

import os
from typing import Any

from qshpc import settings
from qshpc.aer.sizing import estimate_memory_bytes

#: Aer methods whose statevector a step can split (``automatic`` is a statevector here).
METHODS = ("statevector", "automatic")
#: The most ranks (each with a node's memory) a refusal suggests splitting over: a circuit
#: that would need more is refused without split advice (60 qubits: 1,073,741,824 nodes).
MAX_SPLIT_RANKS = 1024


def node_bytes() -> int:
    """This node's physical memory (what Aer sizes its simulator by)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):  # pragma: no cover - every Linux has both
        return 1 << 62


def ranks_needed(
    width: int, limit: int, precision: str = "double", memory: int | None = None
) -> int:
    """The fewest ranks (a power of two) whose chunk of a ``width``-qubit statevector fits one rank.

    A chunk of ``width - log2(k)`` qubits fits when it is no wider than ``limit``
    (Aer's own width limit for one process on this node) and the sizing estimate
    (:func:`qshpc.aer.sizing.estimate_memory_bytes`: the state, 10% and the
    process) fits this node's memory. Each rank is assumed to have a node's
    memory: ranks that share a node share its memory (docs/distributed.md).

    Example:
        >>> ranks_needed(33, 30, memory=24 << 30)   # 33 qubits, 24 GiB nodes: 8 chunks of 30
        8
    """
    memory = node_bytes() if memory is None else memory
    k = 1
    while True:
        chunk = width - (k.bit_length() - 1)
        if chunk <= 1 or (
            chunk <= limit and estimate_memory_bytes(chunk, "statevector", precision) <= memory
        ):
            return k
        k *= 2


def ranks_for(
    width: int,
    limit: int,
    method: str,
    device: str,
    precision: str = "double",
    mode: str | int | None = None,
) -> int:
    """Ranks to split a ``width``-qubit circuit over (1: one rank), as ``QSHPC_DISTRIBUTE`` says.

    A circuit that cannot be split (another method, a GPU) gets 1: the usual
    width check then refuses it when it is too wide.

    ``mode`` is ``QSHPC_DISTRIBUTE``'s value (None: read it now).

    Raises:
        SettingError: ``QSHPC_DISTRIBUTE`` holds a bad value.
    """
    if mode is None:
        mode = settings.DISTRIBUTE.get()
    if mode == "never" or method not in METHODS or device != "CPU":
        return 1
    too_wide = width > limit
    if mode == "auto" or (isinstance(mode, int) and width < mode):
        return ranks_needed(width, limit, precision) if too_wide else 1
    return max(2, ranks_needed(width, limit, precision) if too_wide else 1)


def missing(ranks: int, have: int, where: str | None = None, in_task: bool = False) -> list[str]:
    """What a ``ranks``-rank split lacks here, in words (empty: nothing).

    Args:
        ranks: The ranks it needs.
        have: The ranks the job (or the running call) has for it.
        where: Why this place cannot hold ranks at all (inside a task...), or None.
        in_task: ``have`` are the ranks the running call holds, not the job's.
    """
    from qshpc.aer.distributed.install import locate

    out = []
    if where is not None:
        out.append(where)
    elif have < ranks and in_task:
        out.append(
            f"this task holds {have} rank(s), it needs {ranks} "
            f"(declare it @distribute_task(target={{'ranks': {ranks}}}))"
        )
    elif have < ranks:
        out.append(
            f"this job has {have} rank(s), it needs {ranks} (qshpc run --workers {ranks - 1}; "
            f"qshpc submit with --nodes x --ntasks-per-node of {ranks} or more)"
        )
    if locate() is None:
        out.append("no MPI build of Aer is installed (make install-aer-mpi)")
    return out


def one_node() -> str | None:
    """The host when every rank a split here would use is on that one node, else None.

    On rank 0 of a program: all the job's ranks on rank 0's host (a local ``qshpc run``,
    ``mpiexec``, or a one-node Slurm job). Inside a call holding ranks: one host among them.
    """
    from qshpc.task.context import current_task, rank_info

    task = current_task()
    step = None if task is None else task.step
    if step is not None:
        hosts = set(step.hosts)
        return hosts.pop() if len(hosts) == 1 else None
    info = rank_info()
    return info.host if info.local_size >= info.size else None


def one_node_lacks(lacks: list[str], width: int, k: int, precision: str = "double") -> list[str]:
    """``lacks`` of a split of a circuit too wide for one rank, when the ranks share one node.

    Their shares come out of that node's memory: the split gains no width (2 ranks of
    a 24 GiB node would each allocate 16 GiB for 31 qubits: the OOM killer). The
    rank count is then not what is missing, the nodes are.
    """
    host = one_node()
    if host is None:
        return lacks
    need = estimate_memory_bytes(width, "statevector", precision) / (1 << 30)
    return [
        f"every rank it could use is on one node ({host}, {node_bytes() / (1 << 30):,.0f} GiB), "
        f"whose memory they share: split or not, the {width}-qubit statevector needs about "
        f"{need:,.0f} GiB there; run it on {k} nodes (qshpc submit --nodes {k} "
        "--ntasks-per-node 1)",
        *(x for x in lacks if "rank(s), it needs" not in x),
    ]


def refusal(name: str, width: int, limit: int, k: int, spec: Any, lacks: list[str]) -> str:
    """Why the ``width``-qubit circuit ``name`` cannot run split over ``k`` ranks here.

    ``spec`` is the rank's :class:`qshpc.aer.simulator.SimSpec`; ``lacks`` from
    :func:`missing` and the caller's own checks.
    """
    from qshpc.aer.sizing import GIB, estimate_memory_bytes

    why = "; ".join(lacks)
    if width <= limit:  # QSHPC_DISTRIBUTE asked for it
        return (
            f"{setting_text()} asks to split circuit {name!r} ({width} qubits) over "
            f"{k} ranks, but {why}; unset QSHPC_DISTRIBUTE to run it on one rank"
        )
    gib = estimate_memory_bytes(width, "statevector", spec.precision) / GIB
    split = (
        f"it would run split over {k:,} ranks, each with this node's memory, "
        f"but {why} (docs/distributed.md); or "
        if k <= MAX_SPLIT_RANKS
        else ""
    )
    return (
        f"circuit {name!r} has {width} qubits: more than the {limit} that Aer's "
        f"{spec.method} method can hold in this node's memory (it would need about "
        f"{gib:,.0f} GiB); {split}use fewer qubits, "
        "method='matrix_product_state' (low entanglement) or method='stabilizer' "
        "(Clifford circuits)"
    )


def check_hosts(
    width: int,
    hosts: list[str] | tuple[str, ...],
    precision: str = "double",
    memory: int | None = None,
) -> None:
    """Refuse a split whose ranks on one node would need more than its memory together.

    ``hosts`` has one entry per rank of the split (the held ranks' hosts). Each rank
    needs the sizing estimate of its chunk (``width - log2(k)`` qubits); ranks on one
    node share its memory (``memory``: this node's, assumed for every node). Aer checks
    each process alone against the whole node, so without this several ranks of one
    node could all start and be killed for memory.

    Raises:
        ResourceError: Naming the node, its ranks, what they need and what to change.
    """
    from collections import Counter

    from qshpc.errors import ResourceError

    k = len(hosts)
    if k < 2:
        return
    memory = node_bytes() if memory is None else memory
    chunk = width - (k.bit_length() - 1)
    each = estimate_memory_bytes(chunk, "statevector", precision)
    host, count = Counter(hosts).most_common(1)[0]
    if count * each <= memory:
        return
    gib = 1 << 30
    fits = max(1, memory // each)
    raise ResourceError(
        f"a {width}-qubit statevector split over {k} ranks needs about {each / gib:.1f} GiB "
        f"per rank, and {count} of the ranks are on {host}: {count * each / gib:.1f} GiB "
        f"together, more than its {memory / gib:.1f} GiB; place at most {fits} rank(s) "
        "per node (qshpc submit --ntasks-per-node, or more nodes), or split over more ranks"
    )


def setting_text() -> str:
    """``QSHPC_DISTRIBUTE=<value>`` as set (for messages)."""
    return f"QSHPC_DISTRIBUTE={os.environ.get(settings.DISTRIBUTE.name, 'auto').strip() or 'auto'}"


__all__ = [
    "MAX_SPLIT_RANKS",
    "METHODS",
    "check_hosts",
    "missing",
    "node_bytes",
    "one_node",
    "one_node_lacks",
    "ranks_for",
    "ranks_needed",
    "refusal",
    "setting_text",
]
