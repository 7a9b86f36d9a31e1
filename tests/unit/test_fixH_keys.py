"""Keys of arguments of a user's class, memoized per process (review46 M4), and the
bindings a worker checks for the code the arguments name (review46 H1): session 26, fixH."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from qshpc.cache.keys import call_key, value_digest
from qshpc.cache.shipped import ShippedDigests, named_bindings

RATE = 1


class Model:
    scale = 1
    table: ClassVar[list[int]] = [1, 2]

    def __init__(self, x: int) -> None:
        self.x = x

    def energy(self) -> int:
        return self.x * self.scale * RATE


def test_a_class_digest_taken_once_follows_every_change_of_the_class() -> None:
    global RATE
    first = value_digest(Model(1))
    assert value_digest(Model(1)) == first  # memoized: the same
    pickle.dumps(Model(1))  # copyreg sets Model.__slotnames__: not part of the key
    assert value_digest(Model(1)) == first
    changes: list[tuple[str, Any]] = [
        ("scale", 2),  # a class attribute set
        ("extra", 3),  # a new one
        ("energy", lambda self: 0),  # a method replaced
    ]
    for name, value in changes:
        had = Model.__dict__.get(name, None)
        setattr(Model, name, value)
        try:
            assert value_digest(Model(1)) != first, name
        finally:
            if had is None:
                delattr(Model, name)
            else:
                setattr(Model, name, had)
        assert value_digest(Model(1)) == first, name
    Model.table.append(3)  # changed in place
    try:
        assert value_digest(Model(1)) != first
    finally:
        Model.table.pop()
    RATE = 5  # a global its method reads
    try:
        assert value_digest(Model(1)) != first
    finally:
        RATE = 1
    assert value_digest(Model(1)) == first


def test_a_class_whose_digest_keeps_changing_is_still_keyed_right() -> None:
    first = value_digest(Model(1))
    digests = []
    for k in range(2, 8):  # past the memo's tries: walked at each meeting, still exact
        Model.scale = k
        digests.append(value_digest(Model(1)))
    Model.scale = 1
    assert len(set(digests)) == 6 and first not in digests
    assert value_digest(Model(1)) == first


HELPERS = """\
class Model:
    class Inner:
        pass
STEP = 1
def times(x):
    return x * STEP
"""


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "fixh_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("fixh_helpers")
    yield mod
    sys.modules.pop("fixh_helpers", None)


def test_named_bindings_are_the_module_attributes_behind_the_arguments(helpers: Any) -> None:
    named: list[Any] = []
    args = (helpers.times, helpers.Model(), helpers.Model.Inner(), lambda: 0)
    call_key(b"\0" * 32, args, None, None, None, named)
    found = named_bindings(named)
    assert [(m, a) for m, a, _ in found] == [("fixh_helpers", "Model"), ("fixh_helpers", "times")]
    shipped = ShippedDigests()
    funcs = {7: (None, "t")}
    keys = ["k0", "k1"]
    assert shipped.keys(keys, 7, funcs, {7: []}, {0: found}) == keys  # the same here
    helpers.STEP = 2  # the program's value: a worker that sees STEP = 1 must not store
    changed = named_bindings(named)
    fresh = ShippedDigests()
    helpers.STEP = 1
    assert fresh.keys(keys, 7, funcs, {7: []}, {1: changed}) == ["k0", None]
    assert fresh.keys(keys, [7, 7], funcs, {7: []}, {0: changed}) == [None, "k1"]
