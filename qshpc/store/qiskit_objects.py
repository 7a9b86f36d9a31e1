"""Common Qiskit objects in the store: typed (data, never code), not pickled.

quantum-serverless 0.10.1 sent these through JSON (qiskit-ibm-runtime's
``RuntimeEncoder``); pickling them made ``job.result()`` refuse them without
``allow_pickle=True``. Each is stored as its parts (arrays, strings, numbers)
under an encoding-type of its own, and read back as the same class, built
from those parts by its constructor (no pickle, no code of the file):

=====================  ===============================  ==================================
encoding-type          class                            parts
=====================  ===============================  ==================================
sparse-pauli-op        ``SparsePauliOp``                ``z``, ``x`` (bool arrays, terms x
                                                        qubits: its ``paulis``), ``coeffs``
                                                        (complex array; a list when some
                                                        are parameter expressions)
pauli                  ``Pauli``                        ``label`` (with its phase: ``-iXZ``)
statevector            ``Statevector``                  ``data`` (complex array), ``dims``
density-matrix         ``DensityMatrix``                ``data``, ``dims``
operator               ``Operator``                     ``data``, ``input_dims``,
                                                        ``output_dims``
parameter              ``Parameter``                    ``name``, ``uuid`` (str: equality
                                                        holds)
parameter-expression   ``ParameterExpression``,         ``qpy``: QPY of a one-gate circuit
                       ``ParameterVectorElement``       whose parameter it is
sampler-result-v1      V1 ``SamplerResult`` (qiskit's   ``quasi_dists`` (each ``data``,
                       and ``qshpc.aer``'s:             ``attrs``), ``metadata``
                       ``qshpc-sampler-result-v1``)
estimator-result-v1    V1 ``EstimatorResult`` (and      ``values``, ``metadata``
                       ``qshpc-estimator-result-v1``)
noise-model            qiskit-aer's ``NoiseModel``      ``json``: ``to_dict(serializable=
                                                        True)`` as JSON text;
                                                        ``basis_gates`` (str list)
quasi-distribution     ``QuasiDistribution``            ``data`` (the plain dict), ``attrs``
prob-distribution      ``ProbDistribution``             (its attributes: ``shots``...)
counts                 ``Counts``
qshpc-quasi-            ``qshpc.aer``'s
distribution           ``QuasiDistribution``
sparse-observable      ``SparseObservable``             ``num_qubits``, ``coeffs`` (complex),
                                                        ``bit_terms`` (uint8), ``indices``
                                                        (uint32), ``boundaries`` (uint64)
pauli-list             ``PauliList``                    ``z``, ``x`` (bool arrays), ``phase``
                                                        (uint8: its group phases)
clifford               ``Clifford``                     ``tableau`` (bool, 2n x 2n+1)
coupling-map           ``CouplingMap``                  ``num_qubits``, ``labelled`` (its
                                                        nodes hold their numbers, not None),
                                                        ``edges`` (int array, edges x 2, in
                                                        the graph's order), ``description``
channel-kraus, -choi,  the quantum channels ``Kraus``,  ``data`` (Kraus, Stinespring:
-superop, -ptm, -chi,  ``Choi``, ``SuperOp``, ``PTM``,  ``left`` and ``right`` if any),
-stinespring           ``Chi``, ``Stinespring``         ``input_dims``, ``output_dims``
aer-statevector,       qiskit-aer's ``AerStatevector``, ``data``, ``dims`` (they also
aer-density-matrix     ``AerDensityMatrix``             pickle as these parts: their C++
                                                        state does not pickle)
bindings-array         ``BindingsArray``                ``shape``, ``names`` (str lists),
                                                        ``values`` (arrays)
observables-array      ``ObservablesArray``             ``shape``, ``labels``, ``coeffs``
                                                        (float), one per observable
backend-result         a backend's ``Result``           ``json``: ``to_dict()`` as JSON,
                                                        complex numbers, arrays and Aer's
                                                        saved states tagged
=====================  ===============================  ==================================

Only the exact classes are typed (a subclass is pickled: it would come back
as its base; so is a V1 ``SamplerResult`` holding other than its own
``QuasiDistribution``). Some values cannot be typed and are pickled as before (then
refused on read unless ``allow_pickle=True``): a parameter expression QPY does
not keep exactly (QPY drops complex coefficients of expressions: ``1j*a``
comes back ``a``; each expression is checked when written), hence a
``SparsePauliOp`` whose coefficients hold one (the expression alone is
pickled, inside the typed operator), and a ``NoiseModel`` whose
``to_dict(serializable=True)`` fails, which ``from_dict`` does not give back
equal (each is checked when written: qiskit-aer 0.18 reads no complex matrix
back, so an amplitude-damping, thermal-relaxation or coherent-unitary error
is pickled), or which has custom noise passes (as ``NoiseModel.from_backend``
adds: ``to_dict`` leaves them out).

In the HDF5 encoding a value is a group marked with its encoding-type, a
``format`` attr (:data:`FORMAT`), and one member per part; in the blob
encoding, extension type 12: ``[encoding-type, format, parts]``. A reader
refuses a kind it does not know, or a newer format, with an error that says to
upgrade qshpc.

qiskit (or qiskit-aer) is imported only when such a value is read; writing
looks the class up by name and imports nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Format of the parts of every kind (written with each value; newer ones are refused).
FORMAT = 1

_QI = "qiskit.quantum_info"
#: The quantum channels of qiskit.quantum_info: module -> class.
_CHANNELS = {
    "kraus": "Kraus",
    "choi": "Choi",
    "superop": "SuperOp",
    "ptm": "PTM",
    "chi": "Chi",
    "stinespring": "Stinespring",
}
#: ``module:qualname`` of each typed class -> its encoding-type.
_CLASSES: dict[str, str] = {
    f"{_QI}.operators.symplectic.sparse_pauli_op:SparsePauliOp": "sparse-pauli-op",
    f"{_QI}.operators.symplectic.pauli:Pauli": "pauli",
    f"{_QI}.states.statevector:Statevector": "statevector",
    f"{_QI}.states.densitymatrix:DensityMatrix": "density-matrix",
    f"{_QI}.operators.operator:Operator": "operator",
    "qiskit._accelerate.circuit:Parameter": "parameter",
    "qiskit._accelerate.circuit:ParameterExpression": "parameter-expression",
    "qiskit._accelerate.circuit:ParameterVectorElement": "parameter-expression",
    # where they were Python classes (qiskit before 2.2)
    "qiskit.circuit.parameter:Parameter": "parameter",
    "qiskit.circuit.parameterexpression:ParameterExpression": "parameter-expression",
    "qiskit.circuit.parametervector:ParameterVectorElement": "parameter-expression",
    "qiskit.primitives.base.sampler_result_v1:SamplerResult": "sampler-result-v1",
    "qiskit.primitives.base.estimator_result_v1:EstimatorResult": "estimator-result-v1",
    "qshpc.aer.results:SamplerResult": "qshpc-sampler-result-v1",
    "qshpc.aer.results:EstimatorResult": "qshpc-estimator-result-v1",
    "qiskit_aer.noise.noise_model:NoiseModel": "noise-model",
    # dict subclasses: were stored as their plain dict (an argument arrived a dict)
    "qiskit.result.distributions.quasi:QuasiDistribution": "quasi-distribution",
    "qiskit.result.distributions.probability:ProbDistribution": "prob-distribution",
    "qiskit.result.counts:Counts": "counts",
    "qshpc.aer.results:QuasiDistribution": "qshpc-quasi-distribution",
    "qiskit.transpiler.coupling:CouplingMap": "coupling-map",
    "qiskit.quantum_info:SparseObservable": "sparse-observable",
    "qiskit._accelerate.sparse_observable:SparseObservable": "sparse-observable",
    f"{_QI}.operators.symplectic.pauli_list:PauliList": "pauli-list",
    f"{_QI}.operators.symplectic.clifford:Clifford": "clifford",
    # quantum channels: their data (a matrix; Kraus and Stinespring: left, right) and dims
    **{f"{_QI}.operators.channel.{m}:{c}": f"channel-{m}" for m, c in _CHANNELS.items()},
    "qiskit_aer.quantum_info.states.aer_statevector:AerStatevector": "aer-statevector",
    "qiskit_aer.quantum_info.states.aer_densitymatrix:AerDensityMatrix": "aer-density-matrix",
    "qiskit.primitives.containers.bindings_array:BindingsArray": "bindings-array",
    "qiskit.primitives.containers.observables_array:ObservablesArray": "observables-array",
    "qiskit.result.result:Result": "backend-result",
}

#: Encoding-types written by this module.
H5_TYPES = frozenset(_CLASSES.values())

#: The quasi-distribution classes of V1 sampler results, and the attributes they keep.
_QUASI = {
    "sampler-result-v1": ("qiskit.result", "QuasiDistribution"),
    "qshpc-sampler-result-v1": ("qshpc.aer.results", "QuasiDistribution"),
}

#: The dict subclasses stored as their dict and attributes: encoding-type -> class.
_DICTS = {
    "quasi-distribution": ("qiskit.result", "QuasiDistribution"),
    "prob-distribution": ("qiskit.result", "ProbDistribution"),
    "counts": ("qiskit.result", "Counts"),
    "qshpc-quasi-distribution": ("qshpc.aer.results", "QuasiDistribution"),
}

_by_type: dict[type, str | None] = {}


class Untyped(Exception):
    """This value of a typed class cannot be stored as data (it is pickled instead)."""


class UnknownKind(ValueError):
    """A stored kind or format this qshpc does not read."""


def kind(value: Any) -> str | None:
    """The encoding-type of ``value``, or None when it is none of the typed classes."""
    t = type(value)
    try:
        return _by_type[t]
    except KeyError:
        found = _CLASSES.get(f"{t.__module__}:{t.__qualname__}")
        if found in ("aer-statevector", "aer-density-matrix"):
            import copyreg  # Aer's states hold a C++ wrapper pickle refuses: send their parts

            copyreg.pickle(t, _reduce_typed)
        if len(_by_type) > 4096:  # classes made at run time: keep the cache bounded
            _by_type.clear()
        _by_type[t] = found
        return found


def kind_of_class(name: str) -> str | None:
    """The encoding-type of the class named ``module:qualname`` (None: not a typed class)."""
    return _CLASSES.get(name)


def _reduce_typed(value: Any) -> tuple[Any, ...]:
    """Pickle ``value`` (of a typed kind) as its parts, rebuilt by :func:`from_parts`."""
    found = typed_parts(value)
    if found is None:
        raise TypeError(f"cannot pickle {type(value).__name__}: its parts are not typed")
    return (from_parts, (found[0], FORMAT, found[1]))


def typed_parts(value: Any) -> tuple[str, dict[str, Any]] | None:
    """``(kind, parts)`` when ``value`` is stored typed, or None when it is not (none of
    the typed classes, or one :func:`to_parts` refuses: the caller pickles it).

    The one path from a value to its typed parts for the HDF5 and blob encodings and
    the cache's faithfulness check. Inside :func:`parts_once`, each object's parts are
    built once (the check and the encoding that follows it share them).
    """
    which = kind(value)
    if which is None:
        return None
    memo: dict[int, tuple[Any, Any]] | None = getattr(_once, "memo", None)
    if memo is not None:
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]  # type: ignore[no-any-return]
    try:
        out: tuple[str, dict[str, Any]] | None = which, to_parts(value, which)
    except Untyped:
        out = None
    if memo is not None:
        memo[id(value)] = (value, out)  # the value held: its id is not reused meanwhile
    return out


_once = threading.local()


@contextmanager
def parts_once() -> Iterator[None]:
    """Within: :func:`typed_parts` builds each object's parts once, in this thread.

    For one write of one value (the cache's :func:`qshpc.cache.body.encode`: its
    faithfulness check, then the blob encoding): the value must not change
    meanwhile. A ``ParameterExpression``'s parts are a QPY dump and load (~0.3 ms),
    a ``Statevector``'s or ``SparsePauliOp``'s copies of its arrays when they are
    not contiguous.
    """
    if getattr(_once, "memo", None) is not None:  # nested: the outer one's
        yield
        return
    _once.memo = {}
    try:
        yield
    finally:
        _once.memo = None


def _qpy_expression(expr: Any) -> bytes:
    """QPY of a one-qubit circuit holding ``expr``; Untyped when it does not load back equal."""
    import io

    from qiskit import qpy  # type: ignore[import-untyped]
    from qiskit.circuit import Gate, QuantumCircuit  # type: ignore[import-untyped]

    circuit = QuantumCircuit(1)
    circuit.append(Gate("qshpc_expr", 1, [expr]), [0])
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    data = buf.getvalue()
    if _qpy_load_expression(data) != expr:
        raise Untyped("QPY does not keep this parameter expression exactly")
    return data


def _qpy_load_expression(data: bytes) -> Any:
    import io

    from qiskit import qpy

    return qpy.load(io.BytesIO(data))[0].data[0].operation.params[0]


def _quasi_parts(dist: Any) -> dict[str, Any]:
    return {"data": dict(dist), "attrs": dict(vars(dist))}


def _dict_of(cls: Any, parts: dict[str, Any]) -> Any:
    """An instance of the dict subclass ``cls`` holding ``parts`` (as saved: no ``__init__``)."""
    out = cls.__new__(cls)
    dict.update(out, parts["data"])
    attrs = parts.get("attrs") or {}
    out.__dict__.update({str(k): v for k, v in attrs.items()})
    return out


def _coupling_parts(value: Any) -> dict[str, Any]:
    import numpy as np

    graph = value.graph
    n = graph.num_nodes()
    payloads = list(graph.nodes())  # its own qubit numbers (add_physical_qubit), or None
    labelled = payloads == list(range(n))
    if list(graph.node_indices()) != list(range(n)) or not (labelled or payloads == [None] * n):
        raise Untyped("a CouplingMap whose nodes are not its qubits 0..n-1")
    edges = np.asarray(list(graph.edge_list()), dtype=np.int64).reshape(-1, 2)
    desc = value.description
    if desc is not None and type(desc) is not str:
        raise Untyped("a CouplingMap whose description is not a str")
    return {"num_qubits": n, "labelled": labelled, "edges": edges, "description": desc}


def _coupling_map(parts: dict[str, Any]) -> Any:
    import numpy as np
    from qiskit.transpiler import CouplingMap  # type: ignore[import-untyped]

    desc = parts.get("description")
    out = CouplingMap(description=None if desc is None else str(desc))
    n = int(parts["num_qubits"])
    out.graph.add_nodes_from(list(range(n)) if parts.get("labelled", True) else [None] * n)
    edges = np.asarray(parts["edges"], dtype=np.int64).reshape(-1, 2)
    out.graph.add_edges_from_no_data([(int(a), int(b)) for a, b in edges])
    return out


def to_parts(value: Any, which: str) -> dict[str, Any]:
    """The parts ``value`` (of encoding-type ``which``) is stored as.

    Raises:
        Untyped: It cannot be stored as data (the caller pickles it).
    """
    import numpy as np

    if which == "sparse-pauli-op":
        coeffs = value.coeffs
        paulis = value.paulis  # their phases are in the coefficients
        out = {"z": np.ascontiguousarray(paulis.z), "x": np.ascontiguousarray(paulis.x)}
        if coeffs.dtype.hasobject:
            return {**out, "coeffs": list(coeffs)}
        return {**out, "coeffs": np.asarray(coeffs, dtype=np.complex128)}
    if which == "pauli":
        return {"label": value.to_label()}
    if which in ("statevector", "density-matrix", "aer-statevector", "aer-density-matrix"):
        return {"data": np.ascontiguousarray(value.data), "dims": [int(d) for d in value.dims()]}
    if which.startswith("channel-"):
        dims: dict[str, Any] = {
            "input_dims": [int(d) for d in value.input_dims()],
            "output_dims": [int(d) for d in value.output_dims()],
        }
        if which in ("channel-kraus", "channel-stinespring"):
            left, right = value._data  # Kraus: lists of matrices; Stinespring: matrices
            out = {"left": _arrays(left), **dims}
            return out if right is None else {**out, "right": _arrays(right)}
        return {"data": np.ascontiguousarray(value.data), **dims}
    if which == "bindings-array":
        data = dict(value.data)
        return {
            "shape": [int(d) for d in value.shape],
            "names": [[str(n) for n in key] for key in data],
            "values": [np.asarray(v) for v in data.values()],
        }
    if which == "observables-array":
        flat = [dict(o) for o in np.asarray(value.tolist(), dtype=object).reshape(-1)]
        for o in flat:
            if not all(isinstance(c, (int, float)) for c in o.values()):
                raise Untyped("an ObservablesArray with non-real coefficients")
        return {
            "shape": [int(d) for d in value.shape],
            "labels": [list(o) for o in flat],
            "coeffs": [np.asarray(list(o.values()), dtype=np.float64) for o in flat],
        }
    if which == "backend-result":
        try:
            parts: dict[str, Any] = {"json": json.dumps(value.to_dict(), cls=_ResultJSON)}
        except (TypeError, ValueError) as exc:
            raise Untyped(f"Result.to_dict() is not JSON: {exc}") from exc
        if _meas_enums(value):
            parts["meas_enums"] = True
        return parts
    if which == "operator":
        return {
            "data": np.ascontiguousarray(value.data),
            "input_dims": [int(d) for d in value.input_dims()],
            "output_dims": [int(d) for d in value.output_dims()],
        }
    if which == "parameter":
        return {"name": str(value.name), "uuid": str(value.uuid)}
    if which == "parameter-expression":
        return {"qpy": _qpy_expression(value)}
    if which in ("sampler-result-v1", "qshpc-sampler-result-v1"):
        qmod, qname = _QUASI[which]
        for q in value.quasi_dists:  # read back as this class: a plain dict or another is not
            t = type(q)
            if t.__qualname__ != qname or not t.__module__.startswith(qmod):
                raise Untyped(f"a quasi-distribution of type {t.__qualname__}, not {qname}")
        return {
            "quasi_dists": [_quasi_parts(q) for q in value.quasi_dists],
            "metadata": list(value.metadata),
        }
    if which in ("estimator-result-v1", "qshpc-estimator-result-v1"):
        return {"values": value.values, "metadata": list(value.metadata)}
    if which in _DICTS:
        return _quasi_parts(value)
    if which == "sparse-observable":
        return {
            "num_qubits": int(value.num_qubits),
            "coeffs": np.asarray(value.coeffs, dtype=np.complex128),
            "bit_terms": np.asarray(value.bit_terms, dtype=np.uint8),
            "indices": np.asarray(value.indices, dtype=np.uint32),
            "boundaries": np.asarray(value.boundaries, dtype=np.uint64),
        }
    if which == "pauli-list":
        return {
            "z": np.ascontiguousarray(value.z),
            "x": np.ascontiguousarray(value.x),
            "phase": np.asarray(value.phase, dtype=np.uint8),
        }
    if which == "clifford":
        return {"tableau": np.ascontiguousarray(value.tableau, dtype=bool)}
    if which == "coupling-map":
        return _coupling_parts(value)
    if which == "noise-model":
        import warnings

        if getattr(value, "_custom_noise_passes", None):
            raise Untyped("a NoiseModel with custom noise passes: to_dict leaves them out")
        read = getattr(value, _READ_FROM, None)
        if isinstance(read, dict):
            # A model read back from a store: Aer's to_dict of a from_dict model gives
            # unitaries that from_dict cannot read (was pickled: get_arguments()'s model
            # saved in the result needed allow_pickle). The parts it came from, if unchanged.
            try:
                if bool(_noise_model(read) == value):
                    return dict(read)
            except Exception:
                pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                text = json.dumps(value.to_dict(serializable=True))
            parts = {"json": text, "basis_gates": sorted(str(g) for g in value.basis_gates)}
            same = bool(_noise_model(parts) == value)
        except Exception as exc:
            raise Untyped(f"NoiseModel.to_dict/from_dict failed: {exc}") from exc
        if not same:  # as a parameter expression is checked: what is read back must equal it
            raise Untyped("NoiseModel.from_dict does not give this model back")
        return parts
    raise UnknownKind(f"not a typed Qiskit object kind: {which!r}")


def from_parts(which: str, version: int, parts: dict[str, Any]) -> Any:
    """The object of encoding-type ``which`` from its parts.

    Raises:
        UnknownKind: A kind this qshpc does not know, or a newer format.
        ImportError: The package of the class (qiskit, qiskit-aer) is missing.
    """
    import numpy as np

    if which not in H5_TYPES or not isinstance(version, int) or version > FORMAT:
        raise UnknownKind(
            f"a Qiskit object of kind {which!r}, format {version!r}, that this version "
            f"cannot read (it reads format {FORMAT} of: {', '.join(sorted(H5_TYPES))}); "
            "upgrade qshpc"
        )
    if which == "parameter-expression":
        data = parts["qpy"]
        if not isinstance(data, bytes):  # bytes(n) of a number n would allocate n bytes
            raise ValueError(f"a parameter expression's QPY is {type(data).__name__}, not bytes")
        return _qpy_load_expression(data)
    if which == "parameter":
        import uuid

        from qiskit.circuit import Parameter

        return Parameter(str(parts["name"]), uuid=uuid.UUID(str(parts["uuid"])))
    if which == "noise-model":
        return _noise_model(parts)
    if which in _QUASI or which.endswith("estimator-result-v1"):
        return _v1_result(which, parts)
    if which in _DICTS:
        import importlib

        qmod, qname = _DICTS[which]
        return _dict_of(getattr(importlib.import_module(qmod), qname), parts)
    if which == "coupling-map":
        return _coupling_map(parts)
    if which in ("aer-statevector", "aer-density-matrix"):
        from qiskit_aer import quantum_info as aqi

        cls = aqi.AerStatevector if which == "aer-statevector" else aqi.AerDensityMatrix
        return cls(np.asarray(parts["data"]), dims=tuple(parts["dims"]))
    if which == "bindings-array":
        from qiskit.primitives.containers import BindingsArray  # type: ignore[import-untyped]

        data = {
            tuple(str(n) for n in names): np.asarray(v)
            for names, v in zip(parts["names"], parts["values"], strict=True)
        }
        return BindingsArray(data, shape=tuple(int(d) for d in parts["shape"]))
    if which == "observables-array":
        from qiskit.primitives.containers import ObservablesArray

        shape = tuple(int(d) for d in parts["shape"])
        items = np.empty(len(parts["labels"]), dtype=object)
        items[:] = [
            dict(zip((str(lb) for lb in labels), (float(c) for c in coeffs), strict=True))
            for labels, coeffs in zip(parts["labels"], parts["coeffs"], strict=True)
        ]
        return ObservablesArray(items.reshape(shape).tolist() if shape else items[0])
    if which == "backend-result":
        from qiskit.result import Result  # type: ignore[import-untyped]

        result = Result.from_dict(json.loads(parts["json"], object_hook=_result_hook))
        if parts.get("meas_enums"):
            _meas_restore(result)
        return result
    from qiskit import quantum_info as qi

    if which.startswith("channel-"):
        cls = getattr(qi, _CHANNELS[which.removeprefix("channel-")])
        dims = {
            "input_dims": tuple(parts["input_dims"]),
            "output_dims": tuple(parts["output_dims"]),
        }
        if "left" not in parts:
            return cls(np.asarray(parts["data"]), **dims)
        left = parts["left"]
        left = np.asarray(left) if which == "channel-stinespring" else [np.asarray(m) for m in left]
        if "right" not in parts:
            return cls(left, **dims)
        right = parts["right"]
        right = (
            np.asarray(right) if which == "channel-stinespring" else [np.asarray(m) for m in right]
        )
        return cls((left, right), **dims)

    if which == "sparse-pauli-op":
        paulis = qi.PauliList.from_symplectic(
            np.asarray(parts["z"], dtype=bool), np.asarray(parts["x"], dtype=bool)
        )
        coeffs = parts["coeffs"]
        if not isinstance(coeffs, np.ndarray):
            held = np.empty(len(coeffs), dtype=object)
            held[:] = list(coeffs)
            coeffs = held
        return qi.SparsePauliOp(paulis, coeffs=coeffs)
    if which == "pauli":
        return qi.Pauli(str(parts["label"]))
    if which == "sparse-observable":  # from_raw_parts checks the parts (check=True)
        return qi.SparseObservable.from_raw_parts(
            int(parts["num_qubits"]),
            np.asarray(parts["coeffs"], dtype=np.complex128),
            np.asarray(parts["bit_terms"], dtype=np.uint8),
            np.asarray(parts["indices"], dtype=np.uint32),
            np.asarray(parts["boundaries"], dtype=np.uint64),
        )
    if which == "pauli-list":
        return qi.PauliList.from_symplectic(
            np.asarray(parts["z"], dtype=bool),
            np.asarray(parts["x"], dtype=bool),
            np.asarray(parts["phase"], dtype=np.uint8),
        )
    if which == "clifford":  # checked to be symplectic by Clifford itself
        return qi.Clifford(np.asarray(parts["tableau"], dtype=bool))
    if which == "statevector":
        return qi.Statevector(np.asarray(parts["data"]), dims=tuple(parts["dims"]))
    if which == "density-matrix":
        return qi.DensityMatrix(np.asarray(parts["data"]), dims=tuple(parts["dims"]))
    return qi.Operator(
        np.asarray(parts["data"]),
        input_dims=tuple(parts["input_dims"]),
        output_dims=tuple(parts["output_dims"]),
    )


def _noise_model(parts: dict[str, Any]) -> Any:
    import warnings

    from qiskit_aer.noise import NoiseModel

    with warnings.catch_warnings():  # deprecated since qiskit-aer 0.15, still its reader
        warnings.simplefilter("ignore", DeprecationWarning)
        model = NoiseModel.from_dict(json.loads(parts["json"]))
    if "basis_gates" in parts:  # to_dict leaves them out; from_dict starts from its own
        model._basis_gates = set(parts["basis_gates"])
    setattr(model, _READ_FROM, {"json": parts["json"], **_basis(parts)})
    return model


#: The attribute a NoiseModel read from a store keeps its parts in (see to_parts).
_READ_FROM = "_qshpc_read_from"


def _basis(parts: dict[str, Any]) -> dict[str, Any]:
    return {"basis_gates": list(parts["basis_gates"])} if "basis_gates" in parts else {}


def _v1_result(which: str, parts: dict[str, Any]) -> Any:
    import importlib

    if which.startswith("qshpc-"):
        module = importlib.import_module("qshpc.aer.results")
    else:
        module = importlib.import_module("qiskit.primitives")
    metadata = list(parts.get("metadata") or [])
    if which in _QUASI:
        qmod, qname = _QUASI[which]
        cls = getattr(importlib.import_module(qmod), qname)
        # their data and attributes as they were: no __init__ runs
        dists = [_dict_of(cls, item) for item in parts["quasi_dists"]]
        return module.SamplerResult(dists, metadata)
    return module.EstimatorResult(parts["values"], metadata)


def _arrays(x: Any) -> Any:
    import numpy as np

    if isinstance(x, (list, tuple)):
        return [np.ascontiguousarray(m) for m in x]
    return np.ascontiguousarray(x)


def _meas_enums(result: Any) -> bool:
    """Whether the experiments of a backend Result hold ``meas_level`` (and any
    ``meas_return``) as Qiskit's enums (Aer's do), which JSON gives back as int and str:
    :func:`_meas_restore` makes them enums again (review45 F8). Some enums and some not
    (made by hand): :class:`Untyped`, pickled, so that it reads back as it was."""
    from qiskit.result.models import MeasLevel, MeasReturnType  # type: ignore[import-untyped]

    found = set()
    for r in result.results:
        found.add(type(r.meas_level) is MeasLevel)
        if hasattr(r, "meas_return"):
            found.add(type(r.meas_return) is MeasReturnType)
    if len(found) > 1:
        raise Untyped("a Result whose meas_level/meas_return are enums in part")
    return found == {True}


def _meas_restore(result: Any) -> None:
    from qiskit.result.models import MeasLevel, MeasReturnType

    for r in result.results:
        r.meas_level = MeasLevel(r.meas_level)
        if hasattr(r, "meas_return"):
            r.meas_return = MeasReturnType(r.meas_return)


class _ResultJSON(json.JSONEncoder):
    """A backend Result's ``to_dict()`` as JSON: complex numbers and arrays tagged."""

    def default(self, o: Any) -> Any:
        import numpy as np

        if isinstance(o, complex | np.complexfloating):
            return {"__complex__": [float(o.real), float(o.imag)]}
        if isinstance(o, np.ndarray):
            if np.iscomplexobj(o):
                return {"__carray__": [o.real.tolist(), o.imag.tolist()]}
            return {"__array__": o.tolist()}
        if isinstance(o, np.generic):
            return o.item()
        t = type(o)
        name = f"{t.__module__}:{t.__qualname__}"
        if name in _RESULT_STATES:  # Aer's save_statevector/save_density_matrix data
            return {"__state__": [name, self.default(np.asarray(o.data)), list(o.dims())]}
        return super().default(o)


#: The states a backend Result's data may hold (Aer's save_*), read back by class name.
_RESULT_STATES = {
    f"{m}:{c}"
    for m in ("qiskit_aer.backends.compatibility", "qiskit.quantum_info.states.statevector")
    for c in ("Statevector",)
} | {
    f"{m}:{c}"
    for m in ("qiskit_aer.backends.compatibility", "qiskit.quantum_info.states.densitymatrix")
    for c in ("DensityMatrix",)
}


def _result_hook(d: dict[str, Any]) -> Any:
    import numpy as np

    if len(d) == 1:
        if "__complex__" in d:
            return complex(*d["__complex__"])
        if "__carray__" in d:
            re, im = d["__carray__"]
            return np.asarray(re) + 1j * np.asarray(im)
        if "__array__" in d:
            return np.asarray(d["__array__"])
        if "__state__" in d and d["__state__"][0] in _RESULT_STATES:
            import importlib

            name, data, dims = d["__state__"]
            module, _, cls = name.partition(":")
            return getattr(importlib.import_module(module), cls)(data, dims=tuple(dims))
    return d


Writer = Any  # write_native(group, name, value)


def write_h5(
    parent: Any, name: str, parts: dict[str, Any], which: str, write: Any, mark: Any
) -> None:
    """Write the parts of a value of encoding-type ``which`` as group ``name`` of ``parent``."""
    group = parent.create_group(name, track_order=True)
    mark(group, which)
    group.attrs["format"] = FORMAT
    for key, item in parts.items():
        write(group, key, item)


def read_h5(node: Any, which: str, read: Any) -> Any:
    """Read a group written by :func:`write_h5` (``read(child)`` reads a native child)."""
    version = int(node.attrs.get("format", 1))
    return from_parts(which, version, {key: read(child) for key, child in node.items()})


def to_plain(value: Any, which: str) -> dict[str, Any]:
    """A JSON-able view (``qshpc result --json``): ``{"type": class name, ...parts}``."""
    out: dict[str, Any] = {"type": type(value).__name__}
    if which == "parameter-expression":
        out["expression"] = str(value)
        out["parameters"] = sorted(str(p) for p in value.parameters)
        return out
    if which == "sparse-pauli-op":
        out["labels"] = [str(p) for p in value.paulis.to_labels()]
        out["coeffs"] = list(value.coeffs)
        return out
    if which == "noise-model":
        try:
            out["noise_model"] = value.to_dict(serializable=True)
        except Exception:
            out["noise_model"] = str(value)
        return out
    if which in _DICTS:  # as before they were typed: the dict (keys made str by the caller)
        return dict(value)
    if which == "sparse-observable":
        out["terms"] = [[str(t), list(ix), c] for t, ix, c in value.to_sparse_list()]
        out["num_qubits"] = int(value.num_qubits)
        return out
    if which in ("pauli-list", "clifford"):
        out["labels"] = [str(p) for p in value.to_labels()]
        return out
    if which == "coupling-map":
        return {
            **out,
            "edges": [list(e) for e in value.get_edges()],
            "num_qubits": value.size(),
            "description": value.description,
        }
    out.update(to_parts(value, which))
    if "quasi_dists" in out:
        out["quasi_dists"] = [q["data"] for q in out["quasi_dists"]]
    return out


__all__ = [
    "FORMAT",
    "H5_TYPES",
    "UnknownKind",
    "Untyped",
    "from_parts",
    "kind",
    "kind_of_class",
    "parts_once",
    "read_h5",
    "to_parts",
    "to_plain",
    "typed_parts",
    "write_h5",
]
