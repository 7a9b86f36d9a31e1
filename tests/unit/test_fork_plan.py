"""What the ranks' fork server imports, and when there is none (qshpc.runtime.forkserver.fork_plan)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qshpc.runtime.forkserver import fork_plan

AER = "from qshpc.aer import Sampler\n"
PLAIN = "print('no qiskit here')\n"


def _program(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(source)
    return path


def test_a_qiskit_program_gets_a_server_that_imports_qiskit_and_aer(tmp_path: Path) -> None:
    plan = fork_plan(_program(tmp_path, AER), None, 3, {})
    assert plan is not None
    modules, blas = plan
    assert modules == ("qiskit", "qiskit_aer")
    assert set(blas) == {"OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}


@pytest.mark.parametrize(
    "env,cache",
    [
        ({"QSHPC_FORK_SERVER": "0"}, None),
        ({}, {"enabled": True, "dir": None}),
        ({"QSHPC_CACHE_JOB": "1"}, None),
        ({"QSHPC_PRELOAD": ""}, None),
    ],
)
def test_no_server(tmp_path: Path, env: dict[str, str], cache: dict[str, object] | None) -> None:
    assert fork_plan(_program(tmp_path, AER), cache, 3, env) is None


def test_no_server_for_a_program_that_needs_nothing(tmp_path: Path) -> None:
    assert fork_plan(_program(tmp_path, PLAIN), None, 3, {}) is None


def test_the_command_line_s_no_cache_wins_over_the_client_s(tmp_path: Path) -> None:
    cache = {"enabled": False, "dir": None}
    assert fork_plan(_program(tmp_path, AER), cache, 3, {"QSHPC_CACHE_JOB": "1"}) is not None


def test_a_user_s_blas_threads_are_left_alone(tmp_path: Path) -> None:
    plan = fork_plan(_program(tmp_path, AER), None, 3, {"OMP_NUM_THREADS": "4"})
    assert plan is not None and plan[1] == {}


def test_with_aer_s_gpu_build_the_server_leaves_aer_to_the_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA started in the server would not work in its forks: Aer is not imported there."""
    site = tmp_path / "site"
    (site / "qiskit_aer_gpu-0.18.2.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    plan = fork_plan(_program(tmp_path, AER), None, 3, {})
    assert plan is not None and plan[0] == ("qiskit",)


def test_pmi_fd_is_handed_over_among_many_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra leaks ~15 + 2 x local rank descriptors into each rank, PMI_FD the highest: with
    32 ranks on a host it was past the 64 a stand-in sends, and MPI_Init failed."""
    import os

    from qshpc.runtime.forkserver import _MAX_FDS, _inherited

    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(_MAX_FDS + 10)]
    try:
        for fd in opened:
            os.set_inheritable(fd, True)
        monkeypatch.setenv("PMI_FD", str(opened[-1]))
        sent = _inherited()
        assert opened[-1] in sent and len(sent) <= _MAX_FDS
        assert {0, 1, 2} & set(range(3)) <= set(sent) | {0, 1, 2}
    finally:
        for fd in opened:
            os.close(fd)
