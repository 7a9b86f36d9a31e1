"""What a rank loads at start (issue 19): the Slurm commands' and the cache's machinery only
where used; qiskit's version for the job's meta without importlib.metadata."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

LAZY = ("subprocess", "shlex", "qshpc.submit.slurm_states", "qshpc.cache.keys", "qshpc.cache.store")


def _loaded(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, cwd=ROOT, check=True, timeout=60,
    )  # fmt: skip
    return list(json.loads(out.stdout.splitlines()[-1]))


def test_a_rank_imports_the_slurm_module_and_the_job_cache_without_their_machinery() -> None:
    before = set(_loaded("pass"))
    after = set(_loaded("import qshpc.submit.slurm, qshpc.cache.jobcache, qshpc.runtime.mpi"))
    assert not (after - before) & set(LAZY), sorted((after - before) & set(LAZY))
    # the cache off: a JobCache that is never asked loads nothing more
    code = (
        "from qshpc.cache.jobcache import CacheConfig, JobCache\n"
        "JobCache(CacheConfig(), 'j', open_now=True).wanted()"
    )
    assert not (set(_loaded(code)) - before) & set(LAZY)


def test_the_job_records_qiskits_version_as_importlib_reads_it() -> None:
    from importlib.metadata import version

    code = "from qshpc.runtime.rank0 import _qiskit_version\nprint(_qiskit_version())"
    for prelude in ("", "import qiskit\n"):
        out = subprocess.run(
            [sys.executable, "-c", prelude + code + "\nimport sys; print('importlib.metadata' in sys.modules)"],
            capture_output=True, text=True, cwd=ROOT, check=True, timeout=120,
        )  # fmt: skip
        got, meta = out.stdout.split()[-2:]
        assert got == version("qiskit"), (prelude, got)
        if not prelude:
            assert meta == "False"  # found by its dist-info folder
