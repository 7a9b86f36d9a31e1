"""The PyPI mpich's ranks use libfabric (``ch4:ofi``) unless the user chose (issue 19).

Every rank of a job must choose the same network module: ``qshpc run``'s own
launcher hands it to the ranks it starts, and ranks a user's ``mpiexec``
started set it themselves before ``MPI_Init``. A value the user set is kept;
``MPIR_CVAR_CH4_NETMOD=ucx`` restores MPICH's default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.runtime import mpi
from tests.conftest import run_program

pytestmark = pytest.mark.mpi

VAR = "MPIR_CVAR_CH4_NETMOD"
# What each rank saw, and whether UCX's transports were loaded (MPI_Init loads
# libuct_cma on Linux when ch4:ucx starts; ch4:ofi never initialises UCX).
PROG = (
    "import os\nfrom qshpc import distribute_task, get, save_result\n"
    "def seen():\n"
    "    maps = open('/proc/self/maps').read()\n"
    f"    return [os.environ.get({VAR!r}), 'libuct_cma' in maps]\n"
    "@distribute_task()\ndef where(i):\n    return seen()\n"
    "save_result({'rank0': seen(), 'tasks': get([where(i) for i in range(6)])})\n"
)


def _netmods(tmp_path: Path, home: Path, ranks: int | None) -> tuple[set[str | None], set[bool]]:
    args = () if ranks is not None else ("--workers", "2")
    job = run_program(home, tmp_path / "netmod.py", PROG, *args, ranks=ranks)
    out = job.result()
    seen = [out["rank0"], *out["tasks"]]
    return {s[0] for s in seen}, {s[1] for s in seen}


@pytest.fixture
def pypi_mpich() -> None:
    if not mpi.pypi_mpich():
        pytest.skip("the MPI here is not the PyPI mpich wheel")


@pytest.mark.parametrize("ranks", [None, 3], ids=["qshpc-launcher", "users-mpiexec"])
def test_local_ranks_of_the_pypi_mpich_use_ofi(
    tmp_path: Path,
    qshpc_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    pypi_mpich: None,
    ranks: int | None,
) -> None:
    monkeypatch.delenv(VAR, raising=False)
    netmods, ucx_loaded = _netmods(tmp_path, qshpc_home, ranks)
    assert netmods == {"ofi"} and ucx_loaded == {False}, (netmods, ucx_loaded)


@pytest.mark.parametrize("ranks", [None, 3], ids=["qshpc-launcher", "users-mpiexec"])
def test_the_users_ucx_is_kept(
    tmp_path: Path,
    qshpc_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    pypi_mpich: None,
    ranks: int | None,
) -> None:
    monkeypatch.setenv(VAR, "ucx")
    netmods, ucx_loaded = _netmods(tmp_path, qshpc_home, ranks)
    assert netmods == {"ucx"} and ucx_loaded == {True}, (netmods, ucx_loaded)


def test_a_notebooks_local_client_ranks_use_ofi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pypi_mpich: None
) -> None:
    from qshpc import LocalClient, Program

    monkeypatch.delenv(VAR, raising=False)
    (tmp_path / "netmod.py").write_text(PROG)
    program = Program(title="netmod", entrypoint="netmod.py", working_dir=str(tmp_path))
    out = LocalClient(workers=2).run(program).result(timeout=120)
    seen = [out["rank0"], *out["tasks"]]
    assert {s[0] for s in seen} == {"ofi"} and {s[1] for s in seen} == {False}, seen


def test_only_the_pypi_mpich_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mpi, "pypi_mpich", lambda: False)  # a cluster's own MPI: left alone
    assert mpi.local_env() == {}
    monkeypatch.setattr(mpi, "pypi_mpich", lambda: True)
    assert mpi.local_env() == {VAR: "ofi"}


def test_the_pypi_mpich_is_found_as_importlib_finds_it() -> None:
    from importlib import metadata

    try:
        metadata.distribution("mpich")
        expected = True
    except metadata.PackageNotFoundError:
        expected = False
    mpi.pypi_mpich.cache_clear()
    assert mpi.pypi_mpich() is expected


def test_a_users_mpiexec_over_several_hosts_keeps_mpichs_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every rank of a job over several hosts sees fewer local ranks than ranks: none sets it."""
    monkeypatch.setattr(mpi, "pypi_mpich", lambda: True)
    one_host = {"PMI_SIZE": "3", "MPI_LOCALNRANKS": "3"}
    assert mpi.rank_env(one_host) == {VAR: "ofi"}
    assert mpi.rank_env({"PMI_SIZE": "4", "MPI_LOCALNRANKS": "2"}) == {}  # 2 hosts
    assert mpi.rank_env({"PMI_SIZE": "3"}) == {}  # not hydra's: who knows where the ranks are
    assert mpi.rank_env({**one_host, VAR: "ucx"}) == {}  # the user's value is kept
    monkeypatch.setattr(mpi, "pypi_mpich", lambda: False)
    assert mpi.rank_env(one_host) == {}
