"""``qshpc doctor``: each check, the table, the exit code, --json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from qshpc import doctor
from qshpc.doctor import FAIL, OK, WARN, Check
from tests.conftest import run_cli

NAMES = ["python", *doctor.PACKAGES, "mpi", "slurm", "aer cpu", "aer gpu", "aer mpi", "store"]


def test_cli_json_lists_every_check_and_exit_code_follows_fails(qshpc_home: Path) -> None:
    out = run_cli("doctor", "--json", timeout=180)
    data = json.loads(out.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert list(checks) == NAMES
    assert all(c["status"] in (OK, WARN, FAIL) for c in checks.values())
    assert data["ok"] == all(c["status"] != FAIL for c in checks.values())
    assert out.returncode == (0 if data["ok"] else 1), out.stderr
    for name in ("python", "qiskit", "h5py", "mpi", "aer cpu", "store"):
        assert checks[name]["status"] == OK, checks[name]
    assert checks["slurm"]["status"] in (OK, WARN)  # depends on a dev cluster being up
    assert all(c["fix"] for c in checks.values() if c["status"] != OK)


def test_cli_table(qshpc_home: Path) -> None:
    out = run_cli("doctor", timeout=180)
    head, *rows = out.stdout.splitlines()
    assert head.split() == ["CHECK", "STATUS", "DETAIL"]
    assert any(r.startswith("mpi ") and " OK " in r for r in rows)
    assert "failed" in rows[-1]


def test_package_versions() -> None:
    assert doctor.check_package("h5py").status == OK
    missing = doctor.check_package("no-such-dist-qshpc")
    assert missing.status == FAIL and "pip install" in missing.fix


def test_mpi_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "find_mpiexec", lambda: None)
    c = doctor.check_mpi()
    assert c.status == FAIL and "mpich" in c.fix


def test_mpi_hang_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "mpiexec"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor, "find_mpiexec", lambda: str(fake))
    c = doctor.check_mpi(timeout=1)
    assert c.status == FAIL and "hung" in c.detail


def test_mpi_ranks_that_do_not_see_each_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "mpiexec"  # two singletons: what a mismatched mpi4py/mpiexec gives
    fake.write_text("#!/bin/sh\necho '1 1 Open MPI'\necho '1 1 Open MPI'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor, "find_mpiexec", lambda: str(fake))
    c = doctor.check_mpi()
    assert c.status == FAIL and "mpi4py" in c.fix


def test_slurm_not_installed_is_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    c = doctor.check_slurm()
    assert c.status == WARN and "make slurm-up" in c.fix


def test_slurm_failing_names_slurm_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "sinfo"
    fake.write_text("#!/bin/sh\necho 'sinfo: error: no config' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    c = doctor.check_slurm()
    assert c.status == WARN and "SLURM_CONF" in c.detail and "SLURM_CONF" in c.fix


def test_slurm_ok(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "sinfo"
    # (sinfo -N: a line per node and partition; review44 F6: each node in two partitions
    # was counted twice, 6 node(s) for 3)
    lines = [f"n{i} {p} up idle" for i in (1, 2, 3) for p in ("debug*", "batch")]
    fake.write_text("#!/bin/sh\n" + "".join(f"echo '{ln}'\n" for ln in lines))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    c = doctor.check_slurm()
    assert c.status == OK and "partitions batch, debug*;" in c.detail
    assert "3 node(s)" in c.detail, c.detail


def test_store_writable_and_not(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert doctor.check_store().status == OK
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QSHPC_HOME", str(blocker))  # a file: its jobs/ folder cannot exist
    c = doctor.check_store()
    assert c.status == FAIL and "QSHPC_HOME" in c.fix
    assert blocker.is_file() and blocker.read_text() == ""


def test_aer_devices() -> None:
    cpu, gpu = doctor.check_aer()
    assert cpu.status == OK and "CPU" in cpu.detail
    assert gpu.status in (OK, WARN)


def test_table_and_json_shapes() -> None:
    checks = [
        Check("a", OK, "fine"),
        Check("b", WARN, "meh", "do x"),
        Check("c", FAIL, "bad", "do y"),
    ]
    table = doctor.format_table(checks)
    assert "-> do x" in table and "-> do y" in table and "1 failed, 1 warning" in table
    assert not doctor.healthy(checks) and doctor.healthy(checks[:2])
    assert doctor.as_json(checks)["checks"][2] == {
        "name": "c",
        "status": FAIL,
        "detail": "bad",
        "fix": "do y",
    }


def test_python_check() -> None:
    c = doctor.check_python()
    assert c.status == OK and sys.executable in c.detail
