"""The body of an entry: the result, encoded so that a hit returns what the task returned.

The store's blob encoding (:mod:`qshpc.store.encoding_blob`) keeps plain
values, arrays and circuits, and stores subclasses of dict, list, str, int
and float as their base type: a ``QuasiDistribution`` comes back a plain
``dict``. A task's result read back from its job is fine that way; a cache hit
must be the result itself (a program may call ``binary_probabilities()`` on
it). So a result is checked first (:func:`faithful`): when the blob encoding
would return it as it is, that is the body; otherwise the body is the result
pickled, inside the same blob format (one pickle extension), which only its
owner's lookups load. ``numpy.float64`` counts as faithful (it comes back a
``float`` of the same value).
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

_EXACT = frozenset((type(None), bool, int, float, complex, str, bytes, bytearray))
_CONTAINERS = frozenset((list, tuple, set, frozenset))


def faithful(value: Any, depth: int = 0) -> bool:
    """True when the blob encoding returns ``value`` with the same types throughout."""
    t = type(value)
    if t in _EXACT:
        return True
    if depth > 100:
        return False
    if t in _CONTAINERS:
        return all(faithful(v, depth + 1) for v in value)
    if t is dict:
        return all(faithful(k, depth + 1) and faithful(v, depth + 1) for k, v in value.items())
    np = sys.modules.get("numpy")
    if np is not None:
        if t is np.ndarray or isinstance(value, np.generic):  # dtype and shape kept
            return not value.dtype.hasobject
        if isinstance(value, np.ndarray):  # a subclass (np.matrix, masked arrays)
            return False
    circuit = sys.modules.get("qiskit.circuit")
    if circuit is not None and t is circuit.QuantumCircuit:
        return set(value.count_ops()) <= _standard_gates()  # QPY keeps standard gates only
    return False


_standard: frozenset[str] | None = None


def _standard_gates() -> frozenset[str]:
    global _standard
    if _standard is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    return _standard


def encode(value: Any) -> bytes:
    """The body of an entry holding ``value``.

    Raises:
        SerializationError: The value can be neither encoded nor pickled.
    """
    from qshpc.store.encoding_blob import EXT_PICKLE, encode_blob

    if faithful(value):
        return encode_blob(value)
    import msgpack

    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        return encode_blob(value)  # the closest the store can keep (raises if nothing can)
    packed: bytes = msgpack.packb(msgpack.ExtType(EXT_PICKLE, data), use_bin_type=True)
    return packed


__all__ = ["encode", "faithful"]
