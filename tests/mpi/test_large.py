"""Objects of a few hundred MB cross MPI (pickle-5, out of band) and land in the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def test_large_result_and_put(qshpc_home: Path) -> None:
    # 160 MiB each way: past every size threshold of the runtime and the store (the largest
    # under 1 GiB: 64 MiB, log.py's _KEEP_LARGE and _COPY: two whole copy pieces and a part);
    # was 320, for nothing more (test_huge_return_over_1_gib crosses 1 GiB, _PIECE).
    args = qshpc_home.parent / "args.json"
    args.write_text(json.dumps({"mb": 160}))
    out = run_cli("run", str(PROGRAMS / "big.py"), "--arguments", str(args), ranks=2, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    from qshpc.store import JobReader

    n = 160 * 1024 * 1024 // 8
    with JobReader.open(job_dir_of(qshpc_home)) as r:
        res = r.result()
        task0 = r.task_result("0")
    assert res["size"] == n and res["last"] == float(n - 1)
    assert isinstance(res["array"], np.ndarray) and res["array"].shape == (n,)
    assert res["array"][12345] == 12345.0
    assert task0.nbytes == n * 8
