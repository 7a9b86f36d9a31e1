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
    ("cache", "cache_dir", "crowd", "deferred", "cache_job"),
    [
        (True, None, 1, True, False),  # --cache, more ranks than cores: at the first batch
        (None, "d", 1, True, False),  # --cache-dir alone turns the cache on
        (True, None, 0, False, False),  # a core per rank: the preload slows nobody
        (None, None, 1, False, False),  # no cache for every task: at the start
        (False, "d", 1, False, False),  # --no-cache
        # QSHPC_CACHE_JOB: a client's or a Slurm job's program(cache=True)
        (None, None, 1, True, True),
        (None, None, 0, False, True),  # ... with a core per rank: at the start
        (False, None, 1, False, True),  # --no-cache on the command line wins
    ],
)
def test_a_cache_run_defers_the_preload_only_where_ranks_share_cores(
    tmp_path: Path,
    cache: bool | None,
    cache_dir: str | None,
    crowd: int,
    deferred: bool,
    cache_job: bool,
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
    assert preload_deferred(spec, info, cache_job) is deferred


def test_crowded_counts_the_cores_of_every_rank_of_the_host() -> None:
    """Slurm binds each rank to its own cores: one rank's mask (1 core) would say 4 ranks
    crowd it, where the host's 4 ranks hold 4 cores between them (``host_cores``)."""
    import os

    from qshpc.task.context import RankInfo, affinity_mask

    assert RankInfo(local_size=4, host_cores=4).crowded() is False
    assert RankInfo(local_size=4, host_cores=3).crowded() is True
    mine = len(os.sched_getaffinity(0))  # not known (0): this process's mask
    assert RankInfo(local_size=mine).crowded() is False
    assert RankInfo(local_size=mine + 1).crowded() is True
    mask = affinity_mask()
    assert mask is not None and bin(mask).count("1") == mine


def test_the_ranks_learn_their_host_s_cores(tmp_path: Path) -> None:
    """Under mpiexec, each rank pinned to one core of its own (taskset in each rank's
    command): ``host_cores`` is the union, so 2 ranks on 2 cores do not count as crowded."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from qshpc.launch.local import find_mpiexec

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        pytest.skip("needs 2 cores and taskset")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, os\n"
        "from qshpc.runtime.mpi import start\n"
        "w, info, _ = start()\n"
        "with open(os.path.join(os.environ['PROBE_DIR'], f'{info.rank}.json'), 'w') as f:\n"
        "    json.dump([info.rank, info.local_size, info.host_cores, info.crowded()], f)\n"
        "w.finalize()\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PROBE_DIR": str(tmp_path)}
    cmd = [find_mpiexec(), "-n", "1", "taskset", "-c", str(cores[0]), sys.executable, str(probe),
           ":", "-n", "1", "taskset", "-c", str(cores[1]), sys.executable, str(probe)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    got = sorted(json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert got == [[0, 2, 2, False], [1, 2, 2, False]], out.stdout
