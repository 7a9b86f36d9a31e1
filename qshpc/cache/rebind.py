"""A hit's Qiskit parameters made the call's own again.

A key holds a circuit's parameters by name (a ``Parameter``'s UUID is new in
every process), so a hit may come from a run whose ``Parameter("θ")`` was
another object. A result that holds the parameters the task was given (a
parameterized circuit transpiled in a task, bound in the program:
``tc.assign_parameters({theta: 0.3})``) would then hold that run's ``θ``, and
the program's own ``θ`` would not be found in it (``CircuitError``). So the
parameters of a hit's circuits and expressions that have the name of one of
the call's argument parameters are replaced by that very parameter: the hit
holds what a fresh run would have returned.
"""

from __future__ import annotations

import sys
from typing import Any

_DEPTH = 4


def _text(p: Any) -> str:
    """A parameter as the key knows it (:func:`qshpc.cache.keycircuit._fix`): its kind and name."""
    return f"{type(p).__name__}:{p}"


def arg_parameters(args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters of the circuits and expressions among a call's arguments, by name
    (at the top level and in lists, tuples and dicts of them)."""
    qc_mod = sys.modules.get("qiskit.circuit")
    if qc_mod is None:
        return {}
    circuit, expression = qc_mod.QuantumCircuit, qc_mod.ParameterExpression
    found: dict[str, Any] = {}

    def scan(v: Any, depth: int) -> None:
        t = type(v)
        if t is list or t is tuple:
            if depth < _DEPTH:
                for x in v:
                    scan(x, depth + 1)
        elif t is dict:
            if depth < _DEPTH:
                for x in v.values():
                    scan(x, depth + 1)
        elif isinstance(v, circuit):
            if v.num_parameters:
                for p in v.parameters:
                    found.setdefault(_text(p), p)
        elif isinstance(v, expression):
            for p in v.parameters:
                found.setdefault(_text(p), p)

    scan(args, 0)
    if kwargs:
        scan(kwargs, 0)
    return found


def needs_rebind(hit: Any) -> bool:
    """Might :func:`rebind` change a hit's value? Not when its record's bytes hold no
    circuit (QPY starts with ``QISKIT``), no typed ``Parameter``
    (:mod:`qshpc.store.qiskit_objects`: its kind, ``parameter``, is in them) and no pickle."""
    blob = hit.blob
    return blob is None or hit.header.form == "pickle" or b"QISKIT" in blob or b"parameter" in blob


def rebind_hit(hit: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
    """:func:`rebind` of a cache hit's value (decoded now if it was not yet); nothing to
    do (no walk of the value) when :func:`needs_rebind` says so."""
    if not needs_rebind(hit):
        return hit.load()
    return rebind(hit.load(), args, kwargs)


def rebind(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
    """``value`` (a hit, decoded for this lookup: changed in place) with the parameters
    of the call's arguments in place of those of the same names (see the module doc)."""
    if "qiskit.circuit" not in sys.modules:
        return value
    params = arg_parameters(args, kwargs)
    if not params:
        return value
    qc_mod = sys.modules["qiskit.circuit"]
    circuit, expression = qc_mod.QuantumCircuit, qc_mod.ParameterExpression

    def mapping(used: Any) -> dict[Any, Any]:
        out = {}
        for p in used:
            q = params.get(_text(p))
            if q is not None and q != p:  # same name, another UUID
                out[p] = q
        return out

    def fix(v: Any, depth: int) -> Any:
        t = type(v)
        if t is list:
            if depth < _DEPTH:
                v[:] = [fix(x, depth + 1) for x in v]
            return v
        if t is tuple:
            return tuple(fix(x, depth + 1) for x in v) if depth < _DEPTH else v
        if t is dict:
            if depth < _DEPTH:
                for k in v:
                    v[k] = fix(v[k], depth + 1)
            return v
        if isinstance(v, circuit):
            if v.num_parameters:
                m = mapping(v.parameters)
                if m:
                    v.assign_parameters(m, inplace=True)
            return v
        if isinstance(v, expression):
            m = mapping(v.parameters)
            if m:
                return m[v] if v in m else v.subs(m)
        return v

    return fix(value, 0)


__all__ = ["arg_parameters", "needs_rebind", "rebind", "rebind_hit"]
