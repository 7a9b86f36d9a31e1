"""One rank of a distributed Aer step: ``python -m qshpc.aer.distributed.step FOLDER``.

Started k times by :mod:`qshpc.aer.distributed.launch` (a nested ``mpiexec``
or an ``srun`` step) with the MPI build of Aer first on ``PYTHONPATH``. Every
rank loads the same ``circuits.qpy``, appends the saves of ``spec.json``, and
runs Aer with the spec's options: with ``blocking_enable`` the statevector is
split in chunks of ``2**blocking_qubits`` amplitudes, dealt over the ranks of
``MPI_COMM_WORLD``, which this step's ranks alone make up.

Each rank writes ``rank-<r>.json`` (host, pid, resident memory before the run
and its peak, times, or its error); rank 0 writes ``result.json``. Then the
rank finalizes MPI itself (Aer initializes it at import and never finalizes;
without this, ranks were killed after the result was out), and exits 0. A
rank that fails writes its error and exits 1 without finalizing, so the
launcher stops the others rather than leaving them in a collective.

Only the standard library, numpy, qiskit and qiskit_aer are imported here (no
mpi4py): ``MPI_Finalize`` is called through ctypes on the MPI library that Aer
loaded.
"""

from __future__ import annotations

import ctypes
import os
import resource
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from qshpc.aer.distributed.spec import (
    CIRCUITS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    Save,
    StepSpec,
    rank_file,
    write_json,
)

_RANK_VARS = ("PMI_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def env_rank() -> int:
    """This process's rank as its launcher announced it (0 when none did)."""
    for name in _RANK_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def memory_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of this process, in bytes, from ``/proc``."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = {"VmRSS": peak, "VmHWM": peak}
    return out


def loaded_mpi_library() -> str | None:
    """Path of the MPI library mapped into this process (the one Aer linked)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {ln.split()[-1] for ln in maps if "/libmpi" in ln}
    for path in sorted(paths):
        name = os.path.basename(path)
        if name.startswith("libmpi.so") or (name.startswith("libmpi") and ".so" in name):
            return path
    return None


def finalize_mpi() -> bool:
    """``MPI_Finalize`` on the loaded MPI library, if MPI is initialized; True when done."""
    path = loaded_mpi_library()
    if path is None:
        return False
    lib = ctypes.CDLL(path)
    done, started = ctypes.c_int(0), ctypes.c_int(0)
    lib.MPI_Initialized(ctypes.byref(started))
    lib.MPI_Finalized(ctypes.byref(done))
    if started.value and not done.value:
        return int(lib.MPI_Finalize()) == 0
    return False


#: Gates a distributed step accepts: what ``transpile(basis_gates=BASIS)`` gives,
#: the basis changes of :func:`add_saves`, measurements and barriers. With
#: chunks, Aer 0.18.2 corrupts its heap or returns wrong amplitudes on some
#: of its other gates (seen: ``ccz`` with a control above ``blocking_qubits``,
#: ``cu`` with a phase and its target there); random circuits in this basis
#: matched Qiskit's statevector on 1, 2 and 4 ranks.
BASIS = ("u", "cx")
ALLOWED = frozenset({*BASIS, "h", "s", "sdg", "measure", "barrier"})


def check_gates(circuits: list[Any], transpiled: bool = False) -> None:
    """Raise ValueError naming the first instruction outside :data:`ALLOWED`, or a custom
    operation with one of their names (Aer would run it as the standard one).

    ``transpiled``: the circuits went through :func:`qshpc.aer.distributed.run.prepare`
    already, so what is left (a ``reset``, a ``delay``) is no gate a transpile removes.
    """
    from qshpc.aer.shadowed import nonstandard_operations

    for i, circuit in enumerate(circuits):
        for ins in circuit.data:
            if ins.operation.name not in ALLOWED:
                fix = (
                    "it stays after transpiling: run this circuit in one process "
                    "(AerSimulator().run) instead"
                    if transpiled
                    else "run_circuits(..., transpile=True) transpiles them"
                )
                raise ValueError(
                    f"circuit {i} ({circuit.name!r}) has a {ins.operation.name!r}: a distributed step "
                    f"runs unitary circuits transpiled to basis_gates={list(BASIS)} and "
                    "measurements (Aer's chunked statevector is wrong on some other operations); "
                    + fix
                )
        for op in nonstandard_operations(circuit):
            if op.name != "barrier" or type(op).__module__ != "qiskit.circuit.barrier":
                raise ValueError(
                    f"circuit {i} ({circuit.name!r}) has a {op.name!r} that is not Qiskit's "
                    f"({type(op).__name__}): a distributed step runs operations by their names; "
                    "run_circuits(..., transpile=True) replaces it by its definition"
                )


def pauli_groups(
    paulis: list[tuple[str, float, float]],
) -> list[tuple[dict[int, str], list[tuple[str, float]]]]:
    """Terms grouped so that each group is diagonal after one change of basis.

    Returns ``(basis, terms)`` per group: ``basis`` maps a position of the
    operator's qubits to ``"X"`` or ``"Y"`` (the positions to rotate), ``terms``
    are ``(Z-only label, coefficient)``. Terms join the first group whose basis
    acts with the same letter on every qubit both act on.

    Raises:
        ValueError: On a complex coefficient (the observable must be Hermitian).
    """
    groups: list[tuple[dict[int, str], list[tuple[str, float]]]] = []
    for label, re, im in paulis:
        if abs(im) > 1e-12:
            raise ValueError(
                f"the observable must be Hermitian: term {label} has coefficient {re}{im:+}j"
            )
        need = {i: ch for i, ch in enumerate(reversed(label)) if ch != "I"}
        diag = "".join("Z" if ch in "XY" else ch for ch in label)
        for basis, terms in groups:  # qubit-wise commuting: equal letters where both act
            if all(basis.get(i, ch) == ch for i, ch in need.items()):
                basis.update(need)
                terms.append((diag, re))
                break
        else:
            groups.append((dict(need), [(diag, re)]))
    return [({i: ch for i, ch in basis.items() if ch in "XY"}, terms) for basis, terms in groups]


def add_saves(circuit: Any, saves: list[Save]) -> dict[str, tuple[list[str], float]]:
    """Append the spec's ``save_*`` instructions to ``circuit`` (in place).

    An expectation value is saved as one diagonal operator per group of
    :func:`pauli_groups`, between a change of basis (``H`` for X, ``Sdg H`` for Y)
    and its inverse, on the qubits the group acts on only. Both avoid Aer bugs
    with chunks (measured with qiskit-aer 0.18.2): its Pauli expectation value
    crashes or hangs when an X or Y acts on a qubit above ``blocking_qubits``
    on another rank, and an operator padded with identities on such qubits
    can come out wrong (by 4e-3 in one test).

    Returns:
        Per save label, the Aer data keys whose values add up to it, and a
        constant to add (the identity terms).
    """
    from qiskit.quantum_info import SparsePauliOp  # type: ignore[import-untyped]
    from qiskit_aer.library import SaveExpectationValue, SaveProbabilities

    keys: dict[str, tuple[list[str], float]] = {}
    for s in saves:
        qubits = [circuit.qubits[q] for q in s.qubits]
        if s.kind in ("probabilities", "statevector"):
            if s.kind == "probabilities":
                circuit.append(SaveProbabilities(len(qubits), label=s.label), qubits)
            else:
                circuit.save_statevector(label=s.label)
            keys[s.label] = ([s.label], 0.0)
            continue
        names: list[str] = []
        constant = 0.0
        for g, (basis, terms) in enumerate(pauli_groups(s.paulis)):
            constant += sum(c for label, c in terms if set(label) <= {"I"})
            terms = [(label, c) for label, c in terms if not set(label) <= {"I"}]
            if not terms:
                continue
            width = len(terms[0][0])
            support = sorted(
                {width - 1 - i for label, _ in terms for i, ch in enumerate(label) if ch != "I"}
            )
            for pos, ch in basis.items():
                if ch == "Y":
                    circuit.sdg(qubits[pos])
                circuit.h(qubits[pos])
            key = f"{s.label}#{g}"
            reduced = [
                "".join(label[width - 1 - p] for p in reversed(support)) for label, _ in terms
            ]
            op = SparsePauliOp(reduced, [c for _, c in terms])
            circuit.append(SaveExpectationValue(op, label=key), [qubits[p] for p in support])
            names.append(key)
            for pos, ch in basis.items():
                circuit.h(qubits[pos])
                if ch == "Y":
                    circuit.s(qubits[pos])
        keys[s.label] = (names, constant)
    return keys


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of Aer metadata."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write_result(
    folder: Path, spec: StepSpec, result: Any, keys: list[dict[str, tuple[list[str], float]]]
) -> None:
    """``result.json`` (+ ``probabilities-<i>-<label>.npy``) from Aer's result."""
    import numpy as np

    experiments: list[dict[str, Any]] = []
    for i, saves in enumerate(spec.saves):
        data = result.data(i)
        exp: dict[str, Any] = {"metadata": _plain(result.results[i].metadata)}
        if "counts" in data:
            exp["counts"] = {str(k): int(v) for k, v in data["counts"].items()}
        if "memory" in data:  # per shot, in Aer's order (options memory=True)
            exp["memory"] = [str(m) for m in data["memory"]]
        values: dict[str, Any] = {}
        for s in saves:
            if s.kind in ("probabilities", "statevector"):
                name = f"{s.kind}-{i}-{s.label}.npy"
                kind = np.float64 if s.kind == "probabilities" else np.complex128
                np.save(folder / name, np.asarray(data[s.label], dtype=kind))
                values[s.label] = {"file": name}
            else:
                names, constant = keys[i][s.label]
                values[s.label] = {"value": constant + float(sum(np.real(data[k]) for k in names))}
        exp["saved"] = values
        experiments.append(exp)
    write_json(
        folder / RESULT_FILE, {"experiments": experiments, "metadata": _plain(result.metadata)}
    )


def run(folder: Path) -> int:
    """Run this rank's part of the step in ``folder``; returns the exit code."""
    t0 = time.time()
    rank = env_rank()
    report: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "env_rank": rank}
    write_json(rank_file(folder, rank), report)  # who ran where, should this rank be killed
    try:
        import json

        from qiskit import qpy  # type: ignore[import-untyped]
        from qiskit_aer import AerSimulator  # MPI_Init_thread happens here

        report["import_s"] = round(time.time() - t0, 3)
        report["mpi_library"] = loaded_mpi_library()
        spec = StepSpec.from_json(json.loads((folder / SPEC_FILE).read_text()))
        with (folder / CIRCUITS_FILE).open("rb") as f:
            circuits = list(qpy.load(f))
        if len(circuits) != len(spec.saves):
            raise ValueError(f"{len(circuits)} circuits but {len(spec.saves)} save lists")
        check_gates(circuits)
        keys = [add_saves(c, saves) for c, saves in zip(circuits, spec.saves, strict=True)]
        report["before_run"] = memory_status()
        options = dict(spec.options)
        memory = bool(options.pop("memory", False))  # a run option: per-shot outcomes
        sim = AerSimulator(**options)
        t_run = time.time()
        result = sim.run(
            circuits, shots=spec.shots, seed_simulator=spec.seed, memory=memory
        ).result()
        report["run_s"] = round(time.time() - t_run, 3)
        if not result.success:
            raise RuntimeError(f"Aer failed: {result.status}")
        meta = result.metadata
        rank = int(meta.get("mpi_rank", rank))
        report.update(
            rank=rank,
            ranks=int(meta.get("num_mpi_processes", 1)),
            ranks_per_experiment=int(meta.get("num_processes_per_experiments", 1)),
            after_run=memory_status(),
            peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            aer_time_s=float(meta.get("time_taken", 0.0)),
        )
        if rank == 0:
            write_result(folder, spec, result, keys)
        del result, circuits, sim
    except (
        BaseException
    ) as exc:  # the rank's report says what broke, then the launcher stops the rest
        report.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        report["wall_s"] = round(time.time() - t0, 3)
        write_json(rank_file(folder, rank), report)
        sys.stderr.write(f"qshpc step rank {rank} on {report['host']}: {report['error']}\n")
        sys.stderr.flush()
        os._exit(1)
    report["wall_s"] = round(time.time() - t0, 3)
    write_json(rank_file(folder, rank), report)
    finalize_mpi()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m qshpc.aer.distributed.step FOLDER``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / SPEC_FILE).is_file():
        sys.stderr.write(f"usage: python -m qshpc.aer.distributed.step FOLDER (with {SPEC_FILE})\n")
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
