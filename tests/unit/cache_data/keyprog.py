"""Prints the cache keys of calls whose values are hard to hash the same way twice.

Run as a program (``python keyprog.py``, ``runpy`` as ``__main__``, or from a
copy in another folder with lines added above): the keys must not change.
The test edits one thing at a time in a copy of this file (and of
keyhelper.py) and checks that the keys of the calls it touches change and
the others do not.
"""

import dataclasses
import enum
import functools
import json
import os
import sys

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Measure, Parameter, ParameterVector
from qiskit.circuit.library import HGate, real_amplitudes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keyhelper

from qshpc import distribute_task
from qshpc.cache import key

SHOTS = 1000
UNUSED = 1
NAMES = {"alpha", "beta", "gamma", "delta"}  # set order follows the hash seed


class Mode(enum.Enum):
    EXACT = "exact"
    SAMPLED = "sampled"


@dataclasses.dataclass
class Options:
    shots: int = 10
    tags: frozenset[str] = frozenset({"x", "y", "z"})
    mode: Mode = Mode.EXACT


def helper(x):
    return x + 1


@functools.cache
def cached_helper(x):
    return x * 3


@distribute_task()
def task(circuit, params, opts, arr=None):
    if params and circuit.name in {"a", "b", "c"}:
        pass
    return helper(SHOTS) + cached_helper(len(NAMES)) + keyhelper.scale(2)


def make_closure(k):
    def inner(x):
        return x * k

    return inner


closure_task = distribute_task()(make_closure(3))
# Qiskit's singleton gates are instances of classes with no __module__ (_SingletonHGate).
GATES = [HGate(), Measure()]


@distribute_task()
def gate_task(n):
    return [g.name for g in GATES][:n]


lam = distribute_task()(lambda x, y=2: x**y)

# Burn some circuit names first so auto names differ between runs (circuit-N).
for _ in range(int(os.environ.get("KEYPROG_BURN", "0"))):
    QuantumCircuit(1)
qc = QuantumCircuit(2)
qc.h(0)
qc.cx(0, 1)
qc.measure_all()
theta = Parameter("θ")
vec = ParameterVector("v", 2)
pc = QuantumCircuit(2)
pc.rx(theta, 0)
pc.ry(vec[0] * 2 + vec[1], 1)
ansatz = real_amplitudes(3, reps=1)
arr = np.arange(12, dtype=np.float64).reshape(3, 4)
arr[1, 1] = 5.0

keys = {
    "plain": key(task, (qc, [1.5, 2], Options())),
    "param": key(task, (pc, {theta: 0.5, "names": NAMES}, Options(tags=frozenset({"q"})))),
    "ansatz": key(task, (ansatz, np.ones(ansatz.num_parameters), None), {"arr": arr.T}),
    "seeded": key(task, (qc, [], None), seed=12345),
    "closure": key(closure_task, (2,)),
    "lambda": key(lam, (3,), {"y": 4}),
    "sets": key(lam, ({"x": NAMES, 3: frozenset(NAMES)},)),
    "gates": key(gate_task, (1,)),
}
json.dump(keys, sys.stdout)
