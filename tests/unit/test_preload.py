"""What a worker preloads for a program (``QSHPC_PRELOAD=auto``): what the program's imports use."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.runtime.worker import program_needs

AER = ("qiskit", "qiskit_aer")


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("from qshpc import distribute_task\n@distribute_task()\ndef f(x):\n    return x\n", ()),
        ("from qiskit import QuantumCircuit\nfrom qshpc.aer import Sampler\n", AER),
        ("import qiskit\n", ("qiskit",)),
        ("from qiskit.primitives import StatevectorSampler\n", ("qiskit",)),
        ("from qshpc import aer\n", AER),
        ("import qshpc.primitives as p\n", AER),
        ("def task(c):\n    from qiskit_aer import AerSimulator\n    return AerSimulator()\n", AER),
        ("import qiskitfoo\nimport numpy\n", ()),
        ("from . import helper\n", ()),
        ("this is not python(\n", AER),  # unreadable: preload as before
    ],
)
def test_program_needs(tmp_path: Path, source: str, needs: tuple[str, ...]) -> None:
    program = tmp_path / "prog.py"
    program.write_text(source)
    assert program_needs(program) == needs


def test_a_missing_program_preloads_qiskit_and_aer(tmp_path: Path) -> None:
    assert program_needs(tmp_path / "gone.py") == AER


@pytest.mark.parametrize(
    ("cache", "cache_dir", "crowd", "deferred"),
    [
        (True, None, 1, True),  # --cache, more ranks than cores: preload at the first batch
        (None, "d", 1, True),  # --cache-dir alone turns the cache on
        (True, None, 0, False),  # a core per rank: the preload slows nobody, done at the start
        (None, None, 1, False),  # cache as the job was created (its meta): at the start
        (False, "d", 1, False),  # --no-cache
    ],
)
def test_a_cache_run_defers_the_preload_only_where_ranks_share_cores(
    tmp_path: Path, cache: bool | None, cache_dir: str | None, crowd: int, deferred: bool
) -> None:
    import os

    from qshpc.jobs.prepare import RunSpec
    from qshpc.runtime.start import preload_deferred
    from qshpc.task.context import RankInfo

    spec = RunSpec(
        tmp_path / "p.py", cache=cache, cache_dir=tmp_path / cache_dir if cache_dir else None
    )
    cores = len(os.sched_getaffinity(0))
    info = RankInfo(rank=1, size=cores + crowd, local_rank=1, local_size=cores + crowd)
    assert preload_deferred(spec, info) is deferred
