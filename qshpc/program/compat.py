"""quantum-serverless 0.10.1's program-side helpers that have no other home in qshpc.

``fetch_execution_meta`` and ``CircuitMeta`` (circuit sizes of a call's
arguments), the circuit (de)serializers and ``register_all_serializers``
(qshpc already carries circuits as QPY, so registering is a no-op), and
refusals with one line naming qshpc's equivalent for what needs Ray or IBM's
runtime service (``remote``, ``service_serializer``, ``QiskitObjectsEncoder``).
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qshpc.errors import UserError

_PREFIX = "qs"


@dataclass
class CircuitMeta:
    """Size of one circuit argument: qubits and depth."""

    num_qubits: int
    depth: int

    def to_seq(self) -> Sequence[int]:
        """``[num_qubits, depth]``."""
        return [self.num_qubits, self.depth]


def fetch_execution_meta(*args: Any, **kwargs: Any) -> dict[str, Sequence[float | int]]:
    """Qubits and depth of the circuits among a call's arguments (and one list deep).

    Keys as quantum-serverless's: ``qs.args.arg_0``, ``qs.args.arg_0.1``,
    ``qs.kwargs.name``, ``qs.kwargs.name.2``.
    """
    meta: dict[str, Sequence[float | int]] = {}

    def is_circuit(x: Any) -> bool:
        return hasattr(x, "num_qubits") and hasattr(x, "depth") and hasattr(x, "data")

    def add(key: str, value: Any) -> None:
        if is_circuit(value):
            meta[key] = CircuitMeta(value.num_qubits, value.depth()).to_seq()
        elif isinstance(value, list):
            for j, sub in enumerate(value):
                if is_circuit(sub):
                    meta[f"{key}.{j}"] = CircuitMeta(sub.num_qubits, sub.depth()).to_seq()

    for i, a in enumerate(args):
        add(f"{_PREFIX}.args.arg_{i}", a)
    for k, v in kwargs.items():
        add(f"{_PREFIX}.kwargs.{k}", v)
    return meta


def remote(*args: Any, **kwargs: Any) -> Any:
    """Refused: Ray's ``ray.remote``; decorate with ``qshpc.distribute_task(target=...)`` instead."""
    raise UserError(
        "remote is Ray's ray.remote, and qshpc runs no Ray: decorate the function with "
        "qshpc.distribute_task(target={'cpu': ...}) and call it directly (no .remote())"
    )


def circuit_serializer(circuit: Any) -> str:
    """A circuit as text: QPY, zlib, base64 (as quantum-serverless's)."""
    from qiskit import qpy  # type: ignore[import-untyped]

    buff = io.BytesIO()
    qpy.dump(circuit, buff)
    return base64.standard_b64encode(zlib.compress(buff.getvalue())).decode("utf-8")


def circuit_deserializer(encoded_circuit: str) -> Any:
    """The circuit from :func:`circuit_serializer`'s text."""
    from qshpc.store import _qpy

    data = zlib.decompress(base64.standard_b64decode(encoded_circuit))
    return _qpy.load(data)[0]  # with its annotated operations' parameters (see there)


def register_all_serializers() -> None:
    """Nothing to do: qshpc sends circuits to tasks and to the store as QPY already."""


def _runtime_refused(name: str) -> UserError:
    return UserError(
        f"{name} needs qiskit_ibm_runtime's JSON encoders: qshpc stores arguments and results "
        "(circuits as QPY, numpy arrays, dicts) in its HDF5 store; pass the objects themselves"
    )


def service_serializer(service: Any) -> Any:
    """Refused: IBM runtime services are not carried by qshpc."""
    raise _runtime_refused("service_serializer")


def service_deserializer(account: dict[str, Any]) -> Any:
    """Refused: IBM runtime services are not carried by qshpc."""
    raise _runtime_refused("service_deserializer")


class QiskitObjectsEncoder:
    """Refused: quantum-serverless's JSON encoder (qiskit_ibm_runtime's RuntimeEncoder)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _runtime_refused("QiskitObjectsEncoder")


class QiskitObjectsDecoder:
    """Refused: quantum-serverless's JSON decoder (qiskit_ibm_runtime's RuntimeDecoder)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _runtime_refused("QiskitObjectsDecoder")
