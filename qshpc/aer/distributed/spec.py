"""The folder a distributed step reads and writes.

The parent writes, once::

    circuits.qpy     the circuits, transpiled once by the parent (every rank
                     must run the very same circuit: a transpile per rank can
                     differ, and chunks of different circuits mix silently)
    spec.json        what to save per circuit, shots, seed, simulator options

Each rank writes ``rank-<r>.json`` (host, pid, memory, times; or its error),
and the rank that holds Aer's result 0 writes ``result.json`` (plus
``probabilities-<i>.npy`` arrays). Files are written to a temporary name and
renamed, so a reader sees all of one or none.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qshpc.errors import UserError

FORMAT = "qshpc-aer-step"
VERSION = 1
SPEC_FILE = "spec.json"
CIRCUITS_FILE = "circuits.qpy"
RESULT_FILE = "result.json"
SAVE_KINDS = ("probabilities", "expectation_value", "statevector")


@dataclass
class Save:
    """One ``save_*`` instruction appended to a circuit by the step.

    Attributes:
        kind: ``"probabilities"`` (the marginal over ``qubits``),
            ``"expectation_value"`` (of ``paulis`` on ``qubits``) or
            ``"statevector"`` (the whole state, gathered on every rank: for
            checks on small circuits only).
        qubits: Qubit indices of the transpiled circuit.
        label: Key of the saved value in the experiment's data.
        paulis: For expectation values, ``[label, real, imag]`` terms of a
            Hermitian operator over ``qubits`` (Qiskit's little-endian labels).
    """

    kind: str
    qubits: list[int]
    label: str
    paulis: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class StepSpec:
    """What a distributed step computes.

    Attributes:
        saves: Per circuit, the values to save (may be empty: counts only).
        shots: Shots per circuit (counts come from Aer's sampler when the
            circuit measures; 1 with saves only).
        seed: ``seed_simulator``, the same on every rank (Aer would otherwise
            average the ranks' own seeds).
        options: ``AerSimulator`` options (method, precision, blocking_qubits, ...).
    """

    saves: list[list[Save]]
    shots: int
    seed: int
    options: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``spec.json``."""
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepSpec:
        """Parse ``spec.json``; raises :class:`UserError` on another format or version."""
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise UserError(
                f"not a {FORMAT} v{VERSION} spec (format {data.get('format')!r}, "
                f"version {data.get('version')!r}): parent and step run different qshpc versions"
            )
        saves = [
            [Save(s["kind"], list(s["qubits"]), s["label"], [tuple(t) for t in s.get("paulis", [])])
             for s in row]
            for row in data["saves"]
        ]  # fmt: skip
        for row in saves:
            for s in row:
                if s.kind not in SAVE_KINDS:
                    raise UserError(f"unknown save kind {s.kind!r}; use one of {SAVE_KINDS}")
        return cls(saves, int(data["shots"]), int(data["seed"]), dict(data["options"]))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def rank_file(folder: Path, rank: int) -> Path:
    """Where rank ``rank`` writes its report."""
    return folder / f"rank-{rank}.json"


__all__ = [
    "CIRCUITS_FILE",
    "FORMAT",
    "RESULT_FILE",
    "SAVE_KINDS",
    "SPEC_FILE",
    "VERSION",
    "Save",
    "StepSpec",
    "rank_file",
    "write_json",
]
