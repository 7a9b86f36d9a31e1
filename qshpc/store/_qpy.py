"""QPY helpers; qiskit is imported only when a circuit is actually met."""

from __future__ import annotations

import io
import sys
from typing import Any


def circuit_class() -> type | None:
    """Return ``QuantumCircuit`` if qiskit is already imported, else None.

    A value can only be a circuit if qiskit was imported by whoever built it, so
    this never imports qiskit itself.
    """
    mod = sys.modules.get("qiskit.circuit")
    if mod is None:
        return None
    cls: type = mod.QuantumCircuit
    return cls


def is_circuit(value: Any) -> bool:
    """True when ``value`` is a ``QuantumCircuit``."""
    cls = circuit_class()
    return cls is not None and isinstance(value, cls)


def is_circuit_list(value: Any) -> bool:
    """True when ``value`` is a non-empty list of ``QuantumCircuit``."""
    cls = circuit_class()
    return (
        cls is not None
        and type(value) is list
        and len(value) > 0
        and all(isinstance(v, cls) for v in value)
    )


def dump(circuits: Any) -> bytes:
    """QPY bytes of one circuit or a list of circuits."""
    from qiskit import qpy  # type: ignore[import-untyped]

    buf = io.BytesIO()
    qpy.dump(circuits, buf)
    return buf.getvalue()


def load(data: bytes) -> list[Any]:
    """Circuits from QPY bytes (always a list)."""
    from qiskit import qpy

    return list(qpy.load(io.BytesIO(data)))
