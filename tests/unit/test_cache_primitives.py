"""SamplerV2/EstimatorV2 run in this process (plain python, ``--workers 0``, in a task) use the
result cache as their blocks sent to workers do: same keys, hits recorded with provenance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from qshpc.aer import EstimatorV2, SamplerV2
from qshpc.cache.jobcache import CacheConfig, JobCache
from qshpc.errors import UserError
from qshpc.primitives import blocks
from qshpc.primitives.options import block_config, parse_options
from qshpc.program import backend
from qshpc.program.session import Session

pytestmark = pytest.mark.timeout(120)


def _circuit(shift: float = 0.0) -> QuantumCircuit:
    v = ParameterVector("v", 2)
    qc = QuantumCircuit(2)
    qc.ry(v[0], 0)
    qc.rx(2 * v[1] + shift, 1)
    qc.cx(0, 1)
    return qc


VALUES = np.linspace(0.1, 2.0, 12).reshape(6, 2)


def _run(qc: QuantumCircuit, **options: Any) -> tuple[Any, Any]:
    measured = qc.measure_all(inplace=False)
    bound = measured.assign_parameters([0.3, 0.4])
    s = SamplerV2(default_shots=32, seed=11, options=options).run([(measured, VALUES), bound])
    e = EstimatorV2(seed=5, options=options).run([(qc, [["ZZ"], ["XI"]], VALUES)])
    counts = [s.result()[0].data.meas.get_counts(i) for i in range(6)]
    counts.append(s.result()[1].data.meas.get_counts())
    return counts, e.result()[0].data.evs


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[Session, JobCache]]:
    """A one-rank job's session with ``--cache`` (as ``qshpc run --workers 0 --cache``)."""
    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), "job-1")
    session = Session(None, None, {}, cache=cache)
    backend.activate(backend.InlineBackend(session))
    try:
        yield session, cache
    finally:
        backend.activate(None)


def test_a_one_rank_job_takes_the_blocks_from_the_cache(
    job: tuple[Session, JobCache], tmp_path: Path
) -> None:
    session, cache = job
    backend.activate(None)  # the same program without the cache, for the values
    plain = _run(_circuit())
    backend.activate(backend.InlineBackend(session))
    first = _run(_circuit())
    assert (session.executed, session.cached) == (3, 0)  # one block per PUB
    cache.flush(10)
    again = _run(_circuit())  # new circuit objects, same circuits
    assert (session.executed, session.cached) == (3, 3)
    for out in (first, again):
        assert out[0] == plain[0]
        np.testing.assert_array_equal(out[1], plain[1])
    assert isinstance(again[1], np.ndarray)
    other = _run(_circuit(shift=0.5))  # another circuit: its blocks run
    assert (session.executed, session.cached) == (6, 3)
    assert not np.allclose(other[1], plain[1])
    # The option wins over the job: False keeps the blocks out of the cache.
    _run(_circuit(), cache=False)
    assert (session.executed, session.cached) == (6, 3)


def test_in_process_and_worker_blocks_share_their_keys(job: tuple[Session, JobCache]) -> None:
    # A PUB in one block: the call a worker would get (pub 0, start 0, every row).
    _, cache = job
    qc = _circuit().measure_all(inplace=False)
    SamplerV2(default_shots=32, seed=11).run([(qc, VALUES)]).result()
    cache.flush(10)
    qpy, key = blocks._Circuits().get(qc)
    config = block_config(parse_options(None))
    k = cache.key(blocks.sampler_block, (qpy, key, VALUES[0:6], 32, 11, 0, 0, config), {}, None)
    assert k is not None and cache.lookup(k) is not None


def test_plain_python_with_the_cache_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_CACHE_DIR", str(tmp_path / "c"))
    backend.activate(None)
    try:
        first = _run(_circuit(), cache=True)
        inline = backend.current()
        assert isinstance(inline, backend.InlineBackend) and inline.cache is not None
        inline.cache.flush(10)
        assert (inline.cache.hits, inline.cache.misses) == (0, 3)
        again = _run(_circuit(), cache=True)
        assert (inline.cache.hits, inline.cache.misses) == (3, 3)
        assert again[0] == first[0]
        np.testing.assert_array_equal(again[1], first[1])
        _run(_circuit())  # no option, no job: no lookup
        assert (inline.cache.hits, inline.cache.misses) == (3, 3)
    finally:
        backend.activate(None)
    with pytest.raises(UserError, match="cache"):
        SamplerV2(options={"cache": "yes"})
