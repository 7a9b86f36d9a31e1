"""A primitive call as a job's arguments: typed columns, never pickles of Qiskit objects.

``mode=`` clients store the PUBs of one ``run`` as the arguments of a qshpc
job (the built-in program :mod:`qshpc.primitives.programs` reads them back):

=====================  =========================================================
key                    value
=====================  =========================================================
primitive              ``"SamplerV2"`` or ``"EstimatorV2"``
format                 1
circuits               the distinct circuits (one QPY dataset)
circuit_metadata       each distinct circuit's metadata, typed (QPY writes it as JSON:
                       tuples came back as lists, ``{3: ...}`` as ``{"3": ...}``)
circuit_index          int array: each PUB's circuit
ndims, dims            the parameter values' shapes (ndims per PUB, dims concatenated)
num_parameters         int array per PUB
values                 float array: every PUB's values, concatenated (C order,
                       ``circuit.parameters`` order last)
shots                  int array (sampler)
precision              float array (estimator)
obs_ndims, obs_dims    the observables arrays' shapes (estimator)
term_counts            int array: terms of each observable, all PUBs in order
labels, coeffs         every term's Pauli label (qubit 0 rightmost) and coefficient
seed, default          the primitive's seed (or None), default shots / precision
options                the primitive's options (a dict)
=====================  =========================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from qshpc.aer.v2.pubs import EstimatorWork, PubError, SamplerWork
from qshpc.primitives.options import Options

FORMAT = 1


def _circuit_columns(work: list[Any]) -> dict[str, Any]:
    circuits: list[Any] = []
    seen: dict[int, int] = {}
    index = []
    for w in work:
        at = seen.get(id(w.circuit))
        if at is None:
            at = seen[id(w.circuit)] = len(circuits)
            circuits.append(w.circuit)
        index.append(at)
    return {
        "circuits": circuits,
        "circuit_index": np.array(index, dtype=np.int64),
        "circuit_metadata": [dict(c.metadata or {}) for c in circuits],
    }


def _shapes(shapes: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    ndims = np.array([len(s) for s in shapes], dtype=np.int64)
    dims = np.array([d for s in shapes for d in s], dtype=np.int64)
    return ndims, dims


def _unshape(ndims: np.ndarray, dims: np.ndarray) -> list[tuple[int, ...]]:
    out, at = [], 0
    for n in np.asarray(ndims).tolist():
        out.append(tuple(int(d) for d in np.asarray(dims)[at : at + n]))
        at += n
    return out


def _values(work: list[Any]) -> dict[str, Any]:
    return {
        "num_parameters": np.array([w.values.shape[1] for w in work], dtype=np.int64),
        "values": np.concatenate([w.values.ravel() for w in work]) if work else np.zeros(0),
    }


def encode_sampler(
    work: list[SamplerWork], seed: Any, default_shots: int, options: Options
) -> dict[str, Any]:
    """The arguments of a SamplerV2 job."""
    ndims, dims = _shapes([w.shape for w in work])
    return {
        "primitive": "SamplerV2",
        "format": FORMAT,
        **_circuit_columns(work),
        "ndims": ndims,
        "dims": dims,
        **_values(work),
        "shots": np.array([w.shots for w in work], dtype=np.int64),
        "seed": seed,
        "default": default_shots,
        "options": asdict(options),
    }


def encode_estimator(
    work: list[EstimatorWork], seed: Any, default_precision: float, options: Options
) -> dict[str, Any]:
    """The arguments of an EstimatorV2 job."""
    ndims, dims = _shapes([w.pshape for w in work])
    obs_ndims, obs_dims = _shapes([w.oshape for w in work])
    observables = [obs for w in work for obs in (w.given or w.observables)]
    return {
        "primitive": "EstimatorV2",
        "format": FORMAT,
        **_circuit_columns(work),
        "ndims": ndims,
        "dims": dims,
        **_values(work),
        "precision": np.array([w.precision for w in work], dtype=float),
        "obs_ndims": obs_ndims,
        "obs_dims": obs_dims,
        "term_counts": np.array([len(labels) for labels, _ in observables], dtype=np.int64),
        "labels": [label for labels, _ in observables for label in labels],
        "coeffs": np.concatenate([c for _, c in observables]) if observables else np.zeros(0),
        "seed": seed,
        "default": default_precision,
        "options": asdict(options),
    }


def _bindings(circuit: Any, values: np.ndarray, shape: tuple[int, ...]) -> Any:
    from qiskit.primitives.containers import BindingsArray  # type: ignore[import-untyped]

    params = tuple(circuit.parameters)
    if not params:
        return BindingsArray(shape=shape)
    return BindingsArray({params: values.reshape((*shape, len(params)))})


def _split_values(args: dict[str, Any], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    flat = np.asarray(args["values"], dtype=float)
    out, at = [], 0
    for shape, n in zip(shapes, np.asarray(args["num_parameters"]).tolist(), strict=True):
        size = math.prod(shape) * int(n)
        out.append(flat[at : at + size])
        at += size
    return out


def decode(args: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
    """``(primitive name, coerced PUBs, constructor keywords)`` from a job's arguments.

    Raises:
        PubError: Arguments that were not written by :func:`encode_sampler` /
            :func:`encode_estimator` (or by a newer qshpc).
    """
    from qiskit.primitives.containers.estimator_pub import EstimatorPub  # type: ignore[import-untyped]
    from qiskit.primitives.containers.sampler_pub import SamplerPub  # type: ignore[import-untyped]

    name = args.get("primitive")
    if name not in ("SamplerV2", "EstimatorV2") or args.get("format") != FORMAT:
        raise PubError(
            f"these arguments do not hold a primitive call of format {FORMAT} "
            f"(primitive={name!r}, format={args.get('format')!r}); were they written by a newer qshpc?"
        )
    circuits = args["circuits"]
    circuits = circuits if isinstance(circuits, list) else [circuits]
    for circuit, metadata in zip(circuits, args.get("circuit_metadata") or [], strict=False):
        circuit.metadata = metadata  # as given (arguments of older jobs have none: QPY's kept)
    index = np.asarray(args["circuit_index"]).tolist()
    shapes = _unshape(args["ndims"], args["dims"])
    values = _split_values(args, shapes)
    pubs: list[Any] = []
    if name == "SamplerV2":
        for i, shots in enumerate(np.asarray(args["shots"]).tolist()):
            circuit = circuits[index[i]]
            pubs.append(SamplerPub(circuit, _bindings(circuit, values[i], shapes[i]), int(shots)))
        return name, pubs, {"default_shots": int(args["default"])}
    from qiskit.primitives.containers import ObservablesArray

    oshapes = _unshape(args["obs_ndims"], args["obs_dims"])
    counts = np.asarray(args["term_counts"]).tolist()
    labels = list(args["labels"])
    coeffs = np.asarray(args["coeffs"], dtype=float).tolist()
    at_obs = at_term = 0
    for i, precision in enumerate(np.asarray(args["precision"], dtype=float).tolist()):
        circuit = circuits[index[i]]
        flat = np.empty(math.prod(oshapes[i]), dtype=object)
        for k in range(flat.size):
            n = counts[at_obs + k]
            flat[k] = dict(
                zip(labels[at_term : at_term + n], coeffs[at_term : at_term + n], strict=True)
            )
            at_term += n
        at_obs += flat.size
        observables = ObservablesArray(flat.reshape(oshapes[i]))
        pubs.append(
            EstimatorPub(
                circuit, observables, _bindings(circuit, values[i], shapes[i]), float(precision)
            )
        )
    return name, pubs, {"default_precision": float(args["default"])}


__all__ = ["FORMAT", "decode", "encode_estimator", "encode_sampler"]
