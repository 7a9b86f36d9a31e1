"""Conversion of stored values to JSON-able values (``qshpc result --json``)."""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Iterator
from typing import Any

from qshpc._lazy import loaded
from qshpc.store import _qpy, qiskit_objects, qiskit_results

#: Values JSON takes as they are (finite floats too).
_FLAT = frozenset((str, int, bool, type(None)))


def _float(x: float) -> Any:
    return x if math.isfinite(x) else str(x)


def to_jsonable(value: Any) -> Any:
    """Return a value ``json.dumps`` accepts, as close to ``value`` as JSON allows.

    Dict keys become strings (``repr`` of the non-string ones when two keys of
    a dict would read the same, e.g. ``1`` and ``"1"``: no key is lost), arrays and tuples/sets lists, complex numbers
    ``[re, im]``, non-finite floats the strings "nan"/"inf"/"-inf", bytes
    ``{"bytes_base64": ...}``, circuits ``{"qpy_base64": ..., "name": ...,
    "num_qubits": ...}``; anything else its ``str()``.

    Args:
        value: A value as returned by the store.

    Returns:
        The JSON-able value.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, complex):
        return [_float(value.real), _float(value.imag)]
    if type(value) is dict:  # the commonest: str keys, flat plain values (a record's provenance)
        for k, v in value.items():
            t = type(v)
            if type(k) is not str or (t not in _FLAT and not (t is float and math.isfinite(v))):
                break
        else:
            return dict(value)
    if isinstance(value, dict):
        if all(type(k) is str for k in value):  # the common case: no key can clash
            return {k: to_jsonable(v) for k, v in value.items()}
        names = _key_names(value)
        return {n: to_jsonable(v) for n, v in zip(names, value.values(), strict=True)}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    # numpy looked up, not imported: a worker's record meta passes here, and a value
    # cannot be a numpy object if numpy was never imported (workers of a program
    # without numpy do not load it).
    np = loaded("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):  # tolist: a masked element is None (null)
            listed = _listed(value, np)
            return [to_jsonable(v) for v in listed] if value.ndim else to_jsonable(listed)
        if isinstance(value, np.generic):
            return to_jsonable(value.item())
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes_base64": base64.b64encode(bytes(value)).decode("ascii")}
    if qiskit_results.kind(value) is not None:
        return to_jsonable(qiskit_results.to_plain(value))
    if (typed := qiskit_objects.kind(value)) is not None:
        return to_jsonable(qiskit_objects.to_plain(value, typed))
    if _qpy.is_circuit(value):
        return {
            "qpy_base64": base64.b64encode(_qpy.dump(value)).decode("ascii"),
            "name": value.name,
            "num_qubits": value.num_qubits,
        }
    return str(value)


def _key_names(value: dict[Any, Any]) -> list[str]:
    """The JSON names of a dict's keys: ``str(k)``; ``repr`` of the clashing ones (1 and
    "1"), none is lost."""
    names = [str(k) for k in value]
    if len(set(names)) < len(names):
        clash = {n for n in names if names.count(n) > 1}
        names = [repr(k) if str(k) in clash else str(k) for k in value]
        if len(set(names)) < len(names):
            names = [f"{type(k).__name__}:{k!r}" for k in value]
    return names


#: Bytes of an array turned into JSON at a time by :func:`iter_json`.
JSON_CHUNK = 1 << 20


def iter_json(value: Any) -> Iterator[str]:
    """``json.dumps(to_jsonable(value))`` in pieces, the same text when joined.

    Arrays go :data:`JSON_CHUNK` bytes of rows at a time, and containers item by item: the
    whole text, and the whole value as Python lists, are never in memory (review38 F3:
    ``qshpc result --json`` of a 500 MB array took 3.8 GB and 32 s).
    """
    np = loaded("numpy")
    if (
        np is not None
        and isinstance(value, np.ndarray)
        and value.ndim
        and value.nbytes > JSON_CHUNK
    ):
        yield from _iter_array(value)
    elif isinstance(value, dict):
        if not value:
            yield "{}"
            return
        names = list(value) if all(type(k) is str for k in value) else _key_names(value)
        sep = "{"
        for name, item in zip(names, value.values(), strict=True):
            yield f"{sep}{json.dumps(name)}: "
            yield from iter_json(item)
            sep = ", "
        yield "}"
    elif isinstance(value, list | tuple | set | frozenset):
        if not value:
            yield "[]"
            return
        sep = "["
        for item in value:
            yield sep
            yield from iter_json(item)
            sep = ", "
        yield "]"
    elif not isinstance(value, bytes | bytearray | memoryview) and (
        qiskit_results.kind(value) is not None
    ):
        yield from iter_json(qiskit_results.to_plain(value))
    else:
        yield json.dumps(to_jsonable(value))


def _iter_array(arr: Any) -> Iterator[str]:
    """An array of one or more dimensions as :func:`to_jsonable` lists it, rows in chunks."""
    np = sys.modules["numpy"]
    rows = max(1, JSON_CHUNK // max(1, arr.nbytes // len(arr)))
    plain = type(arr) is np.ndarray and arr.dtype.kind in "biuf"
    sep = "["
    for start in range(0, len(arr), rows):
        part = arr[start : start + rows]
        if plain and (part.dtype.kind != "f" or np.isfinite(part).all()):
            text = json.dumps(part.tolist())  # (what to_jsonable gives these, 5x sooner)
        else:
            text = json.dumps(to_jsonable(part))
        yield sep + text[1:-1]
        sep = ", "
    yield "]"


def _listed(value: Any, np: Any) -> Any:
    """``value.tolist()``; for a masked array whose ``tolist`` fails (numpy's cannot take
    nested or subarray fields, review29 F1), its data listed with each element masked as
    a whole (any of its fields) None, or its data alone (a record whose fields are masked
    apart keeps its values)."""
    try:
        return value.tolist()
    except (IndexError, ValueError, TypeError):
        ma = sys.modules.get("numpy.ma")
        if ma is None or not isinstance(value, ma.MaskedArray):
            raise
    data = np.asarray(value.data).tolist()
    mask = ma.getmaskarray(value)
    if mask.dtype.names:  # a mask per field: an element is None when all its fields are
        mask = _all_masked(mask, np)
    if not mask.any():
        return data
    return _none_where(data, mask.tolist())


def _all_masked(mask: Any, np: Any) -> Any:
    """Per element of a structured mask: are all its fields (and their items) masked?"""
    out = np.ones(mask.shape, dtype=bool)
    for name in mask.dtype.names:
        field = mask[name]
        if field.dtype.names:
            field = _all_masked(field, np)
        elif field.ndim > mask.ndim:
            field = field.reshape(*mask.shape, -1).all(axis=-1)
        out &= field
    return out


def _none_where(data: Any, mask: Any) -> Any:
    if isinstance(mask, list):
        return [_none_where(d, m) for d, m in zip(data, mask, strict=True)]
    return None if mask else data
