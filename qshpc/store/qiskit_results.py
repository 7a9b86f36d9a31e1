"""Qiskit's V2 primitive results in the store: typed, never pickled.

``PrimitiveResult``, ``PubResult``, ``SamplerPubResult``, ``DataBin`` and
``BitArray`` values (anywhere in a saved result or a task result) are stored
as their parts, and read back as the same Qiskit types:

==================  =====================  =====================================
encoding-type       node                   holds
==================  =====================  =====================================
primitive-result    group                  ``pubs`` (group of members "0", "1",
                                           ... ), ``metadata`` (native dict)
pub-result,         group                  ``data`` (a data-bin), ``metadata``
sampler-pub-result
data-bin            group                  one member per field, in order,
                                           named as dict keys are escaped
                                           (``escaped-names`` attr; before it:
                                           as they are); ``shape`` attr
bit-array           dataset                the ``uint8`` array (..., shots,
                                           bytes); ``num-bits`` attr
==================  =====================  =====================================

In the blob encoding they are extension type 11: ``[kind, parts]``.

qiskit is imported only when such a value is met (writing: it was imported
by whoever built the value; reading: a node of these types).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from math import prod
from typing import Any

#: Node encoding-types written by this module.
H5_TYPES = frozenset(
    {"primitive-result", "pub-result", "sampler-pub-result", "data-bin", "bit-array"}
)


def kind(value: Any) -> str | None:
    """The encoding-type of a Qiskit primitive container, or None for anything else."""
    mod = sys.modules.get("qiskit.primitives.containers")
    if mod is None:
        return None
    if isinstance(value, mod.BitArray):
        return "bit-array"
    if isinstance(value, mod.DataBin):
        return "data-bin"
    if isinstance(value, mod.SamplerPubResult):
        return "sampler-pub-result"
    if isinstance(value, mod.PubResult):
        return "pub-result"
    if isinstance(value, mod.PrimitiveResult):
        return "primitive-result"
    return None


def to_parts(value: Any, which: str) -> dict[str, Any]:
    """The parts a container of kind ``which`` is stored as."""
    import numpy as np

    if which == "bit-array":
        return {"array": np.ascontiguousarray(value.array), "num_bits": int(value.num_bits)}
    if which == "data-bin":
        return {
            "shape": [int(n) for n in value.shape],
            "fields": {name: value[name] for name in value},
        }
    if which in ("pub-result", "sampler-pub-result"):
        return {"data": value.data, "metadata": dict(value.metadata)}
    if which == "primitive-result":
        return {"pubs": list(value), "metadata": dict(value.metadata)}
    raise ValueError(f"not a primitive container kind: {which!r}")


def from_parts(which: str, parts: dict[str, Any]) -> Any:
    """The Qiskit container of kind ``which`` from its parts."""
    import numpy as np
    from qiskit.primitives import containers as c  # type: ignore[import-untyped]

    if which == "bit-array":
        return c.BitArray(np.asarray(parts["array"], dtype=np.uint8), int(parts["num_bits"]))
    if which == "data-bin":
        return c.DataBin(**dict(parts["fields"]), shape=tuple(parts["shape"]))
    if which == "sampler-pub-result":
        return c.SamplerPubResult(parts["data"], metadata=parts.get("metadata") or {})
    if which == "pub-result":
        return c.PubResult(parts["data"], metadata=parts.get("metadata") or {})
    if which == "primitive-result":
        return c.PrimitiveResult(list(parts["pubs"]), metadata=parts.get("metadata") or {})
    raise ValueError(f"not a primitive container kind: {which!r}")


Writer = Callable[[Any, str, Any], None]

#: Attribute of a data-bin group whose member names are escaped field names.
_ESCAPED = "escaped-names"
Reader = Callable[[Any], Any]


def write_h5(parent: Any, name: str, value: Any, which: str, write: Writer, mark: Any) -> None:
    """Write a container as member ``name`` of the HDF5 group ``parent``.

    Args:
        parent: The h5py group.
        name: The member name.
        value: The container.
        which: Its :func:`kind`.
        write: ``write_native(group, name, value)`` for the parts.
        mark: ``mark(node, encoding_type)``.
    """
    import numpy as np

    parts = to_parts(value, which)
    if which == "bit-array":
        ds = parent.create_dataset(name, data=parts["array"])
        mark(ds, which)
        ds.attrs["num-bits"] = parts["num_bits"]
        return
    group = parent.create_group(name, track_order=True)
    mark(group, which)
    if which == "data-bin":
        group.attrs["shape"] = np.asarray(parts["shape"], dtype=np.int64)
        # A field is a classical register's name, any text: ".", "..", "a/b" are no
        # HDF5 member names as they are (the result failed to compact, or came back
        # as other fields). Escaped as dict keys are; files before the mark hold names as is.
        from qshpc.store.h5names import escape

        group.attrs[_ESCAPED] = True
        for field, item in parts["fields"].items():
            write(group, escape(field), item)
        return
    if which == "primitive-result":
        pubs = group.create_group("pubs", track_order=True)
        mark(pubs, "list")
        for i, pub in enumerate(parts["pubs"]):
            write(pubs, str(i), pub)
    else:
        write(group, "data", parts["data"])
    write(group, "metadata", parts["metadata"])


def read_h5(node: Any, which: str, read: Reader) -> Any:
    """Read a node written by :func:`write_h5` (``read(child)`` reads a native child)."""
    import numpy as np

    if which == "bit-array":
        return from_parts(which, {"array": node[()], "num_bits": int(node.attrs["num-bits"])})
    if which == "data-bin":
        from qshpc.store.h5names import unescape

        named = unescape if bool(node.attrs.get(_ESCAPED, False)) else str
        fields = {named(name): read(child) for name, child in node.items()}
        shape = tuple(int(n) for n in np.asarray(node.attrs.get("shape", []), dtype=np.int64))
        return from_parts(which, {"fields": fields, "shape": shape})
    metadata = read(node["metadata"]) if "metadata" in node else {}
    if which == "primitive-result":
        pubs = node["pubs"]
        ordered = sorted(pubs.keys(), key=int)
        return from_parts(which, {"pubs": [read(pubs[k]) for k in ordered], "metadata": metadata})
    return from_parts(which, {"data": read(node["data"]), "metadata": metadata})


#: A data bin's own keys in :func:`to_plain` (``shape`` cannot be a field: Qiskit refuses it).
_OWN_KEYS = frozenset({"type", "shape", "fields"})


def to_plain(value: Any) -> Any:
    """A JSON-able view: counts per row for bit arrays, lists for arrays (``qshpc result --json``).

    A ``DataBin`` is ``{"type": "DataBin", "shape": [...], FIELD: value, ...}``, its fields
    (the classical registers, ``evs``, ``stds``) beside its own keys; when a field is
    named ``type`` or ``fields`` it is ``{"type": "DataBin", "shape": [...], "fields":
    {FIELD: value, ...}}`` instead (a ``"fields"`` key says which form it is).
    """
    which = kind(value)
    if which is None:
        return value
    if which == "bit-array":
        if value.shape:
            size = prod(value.shape)
            counts = _row_counts(value, size)
        else:
            counts = [_counts(value)]
        return {
            "type": "BitArray",
            "num_bits": value.num_bits,
            "num_shots": value.num_shots,
            "shape": list(value.shape),
            "counts": counts,
        }
    parts = to_parts(value, which)
    if which == "data-bin":
        fields = {k: to_plain(v) for k, v in parts["fields"].items()}
        if _OWN_KEYS.isdisjoint(fields):
            return {"type": "DataBin", "shape": parts["shape"], **fields}
        # a register named "type" (or "fields") would overwrite the bin's own key
        return {"type": "DataBin", "shape": parts["shape"], "fields": fields}
    if which == "primitive-result":
        return {
            "type": "PrimitiveResult",
            "metadata": parts["metadata"],
            "pubs": [to_plain(p) for p in parts["pubs"]],
        }
    name = "SamplerPubResult" if which == "sampler-pub-result" else "PubResult"
    return {"type": name, "data": to_plain(parts["data"]), "metadata": parts["metadata"]}


def _counts(bits: Any) -> dict[str, int]:
    """``bits.get_counts()`` over all rows; a register of 0 bits counts each shot as ``""``
    (Qiskit's ``get_counts`` fails on it: its reshape(-1, 0))."""
    if bits.num_bits == 0:
        rows = prod(bits.shape) if bits.shape else 1
        return {"": int(bits.num_shots) * int(rows)} if bits.num_shots and rows else {}
    counts: dict[str, int] = bits.get_counts()
    return counts


def _row_counts(bits: Any, size: int) -> list[dict[str, int]]:
    """Counts of each of the ``size`` rows (C order), as :func:`_counts` counts them."""
    if bits.num_bits == 0:
        return [{"": int(bits.num_shots)} if bits.num_shots else {} for _ in range(size)]
    flat = bits.reshape(size)
    return [flat.get_counts(i) for i in range(size)]


def summary(value: Any, top: int = 4) -> str:
    """What ``qshpc result`` prints: ``pformat(value)``, dict keys in the order they were
    saved (review38 F14: sorted, ``k0, k1, k10``), with each ``PrimitiveResult`` in it
    (at the top or as a value of a top-level dict) summarized per PUB: its shape, registers
    and most frequent outcomes, or the range of its expectation values.
    """
    from pprint import pformat

    if kind(value) == "primitive-result":
        return _summary(value, top)
    if isinstance(value, dict) and any(kind(v) == "primitive-result" for v in value.values()):
        parts = []
        for key, item in value.items():
            if kind(item) == "primitive-result":
                body = _summary(item, top).replace("\n", "\n  ")
                parts.append(f"{key!r}:\n  {body}")
            else:
                parts.append(f"{key!r}: {pformat(item, sort_dicts=False)}")
        return "\n".join(parts)
    return pformat(value, sort_dicts=False)


def _summary(value: Any, top: int) -> str:
    import numpy as np

    lines = [f"PrimitiveResult: {len(value)} PUB(s), metadata {dict(value.metadata)}"]
    for i, pub in enumerate(value):
        data = pub.data
        lines.append(f"PUB {i}: {type(pub).__name__}, shape {tuple(data.shape)}")
        for name in data:
            item = data[name]
            if kind(item) == "bit-array":
                counts = _counts(item)
                best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
                shown = ", ".join(f"{k}: {v}" for k, v in best)
                more = f", ... ({len(counts)} outcomes)" if len(counts) > top else ""
                lines.append(
                    f"  {name}: BitArray of {item.num_bits} bits x {item.num_shots} shots; "
                    f"all rows: {shown}{more}"
                )
            else:
                arr = np.asarray(item)
                if arr.size and np.issubdtype(arr.dtype, np.number):
                    lines.append(
                        f"  {name}: {arr.dtype} {arr.shape}, min {arr.min():.6g}, "
                        f"max {arr.max():.6g}, mean {arr.mean():.6g}"
                        + (f"; {arr.ravel()[:top].tolist()}" if arr.size <= top else "")
                    )
                else:
                    lines.append(f"  {name}: {arr!r}")
        if pub.metadata:
            lines.append(f"  metadata: {dict(pub.metadata)}")
    return "\n".join(lines)


def plottable(value: Any, top: int = 4) -> Any:
    """What ``qshpc plot`` draws for a ``PrimitiveResult`` (shapes :mod:`qshpc.plot` knows).

    A PUB of one row gives a histogram of each register's counts; a PUB of many
    rows gives, against the parameter index, the counts of the ``top`` most
    frequent outcomes of each register, and each column of ``evs``. PUBs of one
    expectation value each are drawn together against the PUB index.
    """
    if kind(value) != "primitive-result":
        return value
    import numpy as np

    out: dict[str, Any] = {}
    scalars: dict[str, list[float]] = {}
    for i, pub in enumerate(value):
        data = pub.data
        size = int(np.prod(data.shape)) if data.shape else 1
        for name in data:
            item = data[name]
            label = f"pub {i} {name}"
            if kind(item) == "bit-array":
                if size == 1:
                    out[label] = _counts(item)
                    continue
                best = sorted(_counts(item).items(), key=lambda kv: -kv[1])[:top]
                rows = _row_counts(item, size)
                sweep: dict[str, Any] = {"parameter index": np.arange(size)}
                for outcome, _ in best:
                    sweep[f"counts {outcome}"] = np.array([row.get(outcome, 0) for row in rows])
                out[label] = sweep
            elif name != "stds":
                arr = np.asarray(item, dtype=float)
                if arr.size == 1:
                    scalars.setdefault(name, []).append(float(arr.ravel()[0]))
                    continue
                cols = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
                sweep = {"parameter index": np.arange(cols.shape[0])}
                for col in range(min(cols.shape[1], 12)):
                    suffix = f"[:, {col}]" if cols.shape[1] > 1 else ""
                    sweep[f"{name}{suffix}"] = cols[:, col]
                out[label] = sweep
    for name, vals in scalars.items():
        if len(vals) > 1 and len(vals) == len(value):
            out[f"{name} by PUB"] = {"pub index": np.arange(len(vals)), name: np.array(vals)}
    return out


__all__ = [
    "H5_TYPES",
    "from_parts",
    "kind",
    "plottable",
    "read_h5",
    "summary",
    "to_parts",
    "to_plain",
    "write_h5",
]
