"""A large hit of this user's is checked at the lookup and decoded when read (session 16).

The job store keeps a hit's record from the entry's bytes (a ``typed`` body wrapped as the
store keeps the class), byte for byte what encoding the result again would give; a damaged
entry is still a miss, and bytes that pass the checks but do not decode raise one clear
error at the read (never a made-up value).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache.body import encode, store_blob
from qshpc.cache.store import LAZY_MIN, CacheDir, CacheReadError
from qshpc.program.refs import Stored, TaskRef, from_hit, resolve_many
from qshpc.store.encoding_blob import decode_blob, encode_blob


def _key(i: int) -> str:
    return f"{i:064x}"


def _dists() -> list[object]:
    from qiskit.result import Counts, ProbDistribution
    from qiskit.result import QuasiDistribution as QiskitQuasi

    from qshpc.aer.results import QuasiDistribution

    rng = np.random.default_rng(5)
    probs = {i: float(p) for i, p in enumerate(rng.random(300))}
    return [
        QuasiDistribution(probs, shots=1000),
        QiskitQuasi(probs, shots=4000, stddev_upper_bound=0.01),
        ProbDistribution(probs, shots=10),
        Counts({format(i, "012b"): i + 1 for i in range(200)}),
        QuasiDistribution({0: 0.5, 1: 0.5}),  # small
    ]


@pytest.mark.parametrize("index", range(5))
def test_a_typed_record_from_the_entry_s_bytes_is_the_store_s_encoding(index: int) -> None:
    value = _dists()[index]
    enc = encode(value)
    assert enc.form == "typed" and enc.plain and enc.lazy and enc.typed is not None
    blob = store_blob(enc.body, enc.typed)
    assert blob == encode_blob(value)
    back = decode_blob(blob)
    assert type(back) is type(value) and back == value and vars(back) == vars(value)


def test_numpy_scalars_kept_are_the_records_bytes_too(tmp_path: Path) -> None:
    """The job store keeps numpy.float64 since session 24 (mend24), as the cache did: such an
    entry's bytes are the hit's record (they were encoded again, as floats, before)."""
    from qiskit.result import QuasiDistribution

    qd = QuasiDistribution({i: np.float64(1 / 300) for i in range(300)})
    enc = encode(qd)
    assert enc.form == "typed" and enc.plain
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), qd, "f")
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None and hit.blob == encode_blob(qd)
    value = hit.load()  # (a large one of this user's: decoded when read)
    assert type(value) is QuasiDistribution and value == qd and type(value[0]) is np.float64


def test_a_large_hit_is_decoded_when_read(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    values = [
        *_dists(),
        {"e": np.linspace(0, 1, 200).tolist(), "a": np.arange(300), "s": "x"},
        list(range(10)),
    ]
    for i, v in enumerate(values):
        cache.put_value(_key(i), v, "f")
    for i, v in enumerate(values):
        hit = cache.get(_key(i), lazy=True)
        assert hit is not None and hit.blob is not None
        big = len(hit.blob) >= LAZY_MIN
        assert (hit.later is not None) is big and (hit.value is None) is big
        got = hit.load()
        assert type(got) is type(v) and encode_blob(got) == encode_blob(v) and hit.load() is got
        eager = cache.get(_key(i))  # as before: decoded at the lookup
        assert eager is not None and eager.later is None
        assert encode_blob(eager.value) == encode_blob(v)
        assert eager.blob == hit.blob


def test_pickled_entries_are_decoded_at_the_lookup(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    value = {"big": bytearray(5000)}  # not faithful: pickled
    cache.put_value(_key(1), value, "f")
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None and hit.header.form == "pickle" and hit.later is None
    assert hit.value == value


def test_a_damaged_large_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), np.linspace(0, 1, 500).tolist(), "f")
    path = cache.path_of(_key(1))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the body: the checksum catches it
    path.write_bytes(bytes(data))
    assert cache.get(_key(1), lazy=True) is None and not path.exists()
    cache.put_value(_key(2), np.linspace(0, 1, 500).tolist(), "f")
    path = cache.path_of(_key(2))
    path.write_bytes(path.read_bytes()[:-100])  # torn
    assert cache.get(_key(2), lazy=True) is None and cache.damaged == 2


def test_bytes_that_pass_the_checks_but_do_not_decode_raise_at_the_read(tmp_path: Path) -> None:
    """A writer's bug (not damage: the checksum holds): one clear error at the read, the
    entry removed so that the next run computes the result; never a value made up."""
    cache = CacheDir(tmp_path / "c")
    body = b"\xc1" * 2000  # 0xc1: never used by msgpack
    assert cache.put(_key(1), body, "f", form="blob", plain=True, lazy=True)
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None and hit.later is not None
    ref: TaskRef[object] = TaskRef("1", "f")
    resolve_many([(ref, True, from_hit(hit, (), None))])
    assert ref.done() and type(ref._value) is Stored
    with pytest.raises(CacheReadError, match=r"cannot be decoded.*run the job again") as exc:
        ref.result()
    assert "\n" not in str(exc.value)
    assert not cache.path_of(_key(1)).exists() and cache.get(_key(1), lazy=True) is None


def test_a_reference_decodes_its_hit_once(tmp_path: Path) -> None:
    from qiskit.result import QuasiDistribution

    cache = CacheDir(tmp_path / "c")
    qd = _dists()[1]
    cache.put_value(_key(1), qd, "f")
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None
    ref: TaskRef[object] = TaskRef("1", "f")
    resolve_many([(ref, True, from_hit(hit, (), None))])
    assert type(ref._value) is Stored
    first = ref.result()
    assert type(first) is QuasiDistribution and first == qd and ref.result() is first
    # a done reference travels with its value, decoded
    hit2 = cache.get(_key(1), lazy=True)
    assert hit2 is not None
    ref2: TaskRef[object] = TaskRef("2", "f")
    resolve_many([(ref2, True, from_hit(hit2, (), None))])
    back = pickle.loads(pickle.dumps(ref2))
    assert back.result() == qd and type(back.result()) is QuasiDistribution


def test_a_hit_whose_circuits_may_need_the_call_s_parameters_is_decoded(tmp_path: Path) -> None:
    from qiskit.circuit import Parameter, QuantumCircuit

    theta = Parameter("θ")
    qc = QuantumCircuit(2)
    for _ in range(40):
        qc.rx(theta, 0)
        qc.cx(0, 1)
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), qc, "f")
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None and hit.later is not None  # large, no pickle: left undecoded...
    mine = Parameter("θ")
    got = from_hit(hit, (mine,), None)  # ...but rebinding needs the value: decoded now
    assert type(got) is QuantumCircuit and set(got.parameters) == {mine}


def test_get_of_a_large_hit_decodes_a_copy_at_each_read(tmp_path: Path) -> None:
    """``get`` gives a copy of the program's own: of a hit still in its bytes, a decode (not a
    decode and then a copy of it); the reference keeps the bytes, ``result()`` one value."""
    from qshpc.program.api import get

    cache = CacheDir(tmp_path / "c")
    qd = _dists()[0]
    cache.put_value(_key(1), qd, "f")
    hit = cache.get(_key(1), lazy=True)
    assert hit is not None
    ref: TaskRef[object] = TaskRef("1", "f")
    resolve_many([(ref, True, from_hit(hit, (), None))])
    first = get(ref)
    assert type(first) is type(qd) and first == qd and vars(first) == vars(qd)
    assert type(ref._value) is Stored  # still its bytes
    first[0] = 7.0  # the program changes its copy in place...
    first.shots = 1
    second = get([ref])[0]
    assert second == qd and second is not first and vars(second) == vars(qd)  # ...not seen
    mine = ref.result()  # the future's own value: decoded once, kept
    assert mine == qd and ref.result() is mine and type(ref._value) is not Stored
    again = get(ref)
    assert again == qd and again is not mine


def test_the_extension_header_of_a_typed_record_is_msgpack_s() -> None:
    """perf18: store_blob writes the extension's header itself (msgpack's packb of an
    ExtType built a Packer at each hit): the same bytes at every length class."""
    import msgpack

    from qshpc.cache.body import ext_header
    from qshpc.store.encoding_blob import EXT_QISKIT_OBJECT

    for n in (*range(0, 20), 255, 256, 65535, 65536, 70000):
        data = b"x" * n
        want = msgpack.packb(msgpack.ExtType(EXT_QISKIT_OBJECT, data))
        assert ext_header(EXT_QISKIT_OBJECT, n) + data == want, n
