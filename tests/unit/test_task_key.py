"""The resume key of a task: plain values by pickle, any other argument by value (review42)."""

from __future__ import annotations

from typing import Any

from qshpc.program.backend import dumps_payload, task_key


def _circuit(name: str = "theta", angle_scale: float = 1.0) -> Any:
    from qiskit.circuit import Parameter, QuantumCircuit

    theta = Parameter(name)  # a new UUID every time
    qc = QuantumCircuit(2)
    qc.rx(theta * angle_scale, 0)
    qc.cx(0, 1)
    return qc


def _key(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, task_id: str = "3") -> str:
    kwargs = kwargs or {}
    return task_key(b"fn", dumps_payload(args, kwargs, "f", task_id), task_id, (args, kwargs))


def test_the_same_parameterized_circuit_built_again_has_the_same_key() -> None:
    assert _key((_circuit(), 0.5)) == _key((_circuit(), 0.5))
    assert _key(([_circuit(), _circuit("phi")],)) == _key(([_circuit(), _circuit("phi")],))
    assert _key((), {"pub": (_circuit(), [0.1])}) == _key((), {"pub": (_circuit(), [0.1])})


def test_anything_that_changes_the_computation_changes_the_key() -> None:
    base = _key((_circuit(), 0.5))
    assert _key((_circuit("phi"), 0.5)) != base  # another parameter name
    assert _key((_circuit(angle_scale=2.0), 0.5)) != base  # another expression
    assert _key((_circuit(), 0.25)) != base  # another value
    assert _key((_circuit(), 0.5), task_id="4") != base  # another call
    assert task_key(b"gn", b"x", "3") != task_key(b"fn", b"x", "3")  # another function


def test_plain_arguments_count_by_their_pickle_others_by_value() -> None:
    """Ints, strings, lists and dicts of them: by the pickle (a job made before
    session 26 resumes them); anything naming a class, or a set: by value (review42)."""
    import pickle

    plain = pickle.dumps(((1, "a", [2.5, b"x"], {"k": (None, True)}), {}), protocol=5)
    assert task_key(b"fn", plain, "3", pickle.loads(plain)) == task_key(b"fn", plain, "3")
    bound = _circuit().assign_parameters([0.5])
    payload = dumps_payload((bound,), {}, "f", "3")
    assert task_key(b"fn", payload, "3", ((bound,), {})) != task_key(b"fn", payload, "3")
    assert _key((bound,)) == _key((_circuit().assign_parameters([0.5]),))
    assert _key(({"b", "a", "c"},)) == _key(({"c", "a", "b"},))  # not in hash-seed order


def test_arguments_that_cannot_be_walked_never_match() -> None:
    """The pickle could name an edited class by reference: a random identity (a miss)."""
    import threading

    lock = threading.Lock()
    payload = b"\x80\x05...\x93..."
    assert task_key(b"fn", payload, "3", ((lock,), {})) != task_key(
        b"fn", payload, "3", ((lock,), {})
    )


def test_a_primitive_blocks_qpy_bytes_count_by_the_circuits_value() -> None:
    """SamplerV2/EstimatorV2 blocks carry their circuit as QPY bytes (CircuitQPY, pickled as
    plain bytes), which hold the Parameters' UUIDs: keyed by them, a resumed program's blocks
    (split calls of big circuits included) all ran again (hunt20's finding 6)."""
    import numpy as np

    from qshpc.primitives.blocks import CircuitKey, CircuitQPY
    from qshpc.store import _qpy

    def block(circuit: Any, values: Any) -> tuple[Any, ...]:
        qpy = CircuitQPY(_qpy.dump(circuit), circuit)
        return (qpy, CircuitKey("sha-of-those-bytes-" + str(id(qpy))), values, 7)

    values = np.array([[0.1], [0.2]])
    first, again = block(_circuit(), values), block(_circuit(), values)
    assert bytes(first[0]) != bytes(again[0])  # new UUIDs in the QPY
    assert _key(first) == _key(again)
    assert _key(block(_circuit("phi"), values)) != _key(first)
    assert _key(block(_circuit(), values * 2)) != _key(first)
    assert _key(block(_circuit(angle_scale=3.0), values)) != _key(first)


class _Scaled(float):
    """A subclass of a plain type: its pickle names this class by reference."""


def test_numpy_values_and_refs_count_by_pickle_but_a_subclass_of_the_users_by_value() -> None:
    import pickle

    import numpy as np

    for args in [(np.arange(3.0),), (np.float64(2.5), 1j)]:
        raw = dumps_payload(args, {}, "f", "3")
        assert task_key(b"fn", raw, "3", pickle.loads(raw)) == task_key(b"fn", raw, "3")
    for args in [(_Scaled(2.0),), (np.array([1, "a"], dtype=object),)]:
        raw = dumps_payload(args, {}, "f", "3")
        assert task_key(b"fn", raw, "3", pickle.loads(raw)) != task_key(b"fn", raw, "3")
