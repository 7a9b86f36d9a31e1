"""Session 24, lead: run_circuits refuses before a step starts what its ranks would refuse
(review32 F7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qshpc.aer.distributed.run import run_circuits
from qshpc.errors import UserError
from tests.conftest import run_cli


def test_unbound_parameters_are_refused_before_the_step() -> None:
    qc = QuantumCircuit(2)
    qc.rx(Parameter("theta"), 0)
    qc.cx(0, 1)
    with pytest.raises(
        UserError, match=r"circuit 0 .* unbound parameters \(theta\).*assign_parameters"
    ):
        run_circuits([qc], 2)


def test_a_reset_is_refused_before_the_step_with_a_hint_that_applies() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.reset(1)
    qc.cx(0, 1)
    with pytest.raises(UserError, match=r"has a 'reset'.*stays after transpiling.*one process"):
        run_circuits([qc], 2)
    plain = QuantumCircuit(2)
    plain.rz(0.3, 0)
    plain.cx(0, 1)
    with pytest.raises(UserError, match=r"has a 'rz'.*transpile=True\) transpiles them"):
        run_circuits([plain], 2, transpile=False)


def test_a_node_failure_names_the_resume_and_slurm_s_sigterm() -> None:
    """review34 F8: NODE_FAIL named only --requeue (for the next submit), and the store's
    'job cancelled: received SIGTERM' read as a cancel someone asked for."""
    from qshpc.submit.state import SlurmView, _explained

    view = SlurmView(raw="NODE_FAIL", exit_code="0:0", reason="NodeFail")
    text = _explained(view, "job cancelled: received SIGTERM", "20261205-1")
    assert "a node of the job failed" in text
    assert "`qshpc submit --resume 20261205-1` runs only the unfinished tasks" in text
    assert "rank 0 received Slurm's SIGTERM as it ended the job (NODE_FAIL)" in text
    assert "job cancelled" not in text
    other = _explained(SlurmView(raw="OUT_OF_MEMORY", exit_code="0:0"), "boom", "J")
    assert other.endswith("\nboom") and "`qshpc submit --resume J`" in other


def test_the_slurm_id_of_an_array_names_its_elements(qshpc_home: Path) -> None:
    """review34 F6: `qshpc status 325`, the Slurm id `qshpc submit --array` printed, said
    "no job '325'"; it names the array's elements now, as the array's qshpc id does."""
    from qshpc.jobs.paths import SLURM_ID_FILE, jobs_root
    from qshpc.store import create_job

    for i in range(3):
        job = jobs_root() / f"20260101-000000-abcdef-{i}"
        create_job(job, {"id": job.name, "title": "t", "created": 1.0}, {})
        (job / SLURM_ID_FILE).write_text(f"325_{i}\n")
    out = run_cli("status", "325")
    assert out.returncode == 2, out.stderr
    assert "Slurm job 325 is a job array, not one job: its 3 elements" in out.stderr
    assert "20260101-000000-abcdef-0 (Slurm 325_0)" in out.stderr
    assert "`qshpc status 325_0`" in out.stderr and "Traceback" not in out.stderr
    assert run_cli("status", "325_1").returncode == 0
    out = run_cli("status", "326")
    assert out.returncode == 2 and "no job '326'" in out.stderr


def test_list_with_a_limit_says_how_many_elements_of_an_array_it_shows(
    qshpc_home: Path,
) -> None:
    """review34 F7: `qshpc list --limit 2` said `1 element(s)` of a 3-element array."""
    from qshpc.jobs.paths import jobs_root
    from qshpc.store import create_job

    for i in range(3):
        job = jobs_root() / f"20260101-000000-abcdef-{i}"
        meta = {
            "id": job.name,
            "title": "t",
            "created": 1.0 + i,
            "array_id": "20260101-000000-abcdef",
            "array_index": i,
        }
        create_job(job, meta, {})
    lines = run_cli("list", "--limit", "2").stdout.splitlines()
    head = [ln for ln in lines if ln.startswith("array ")]
    assert head and "2 of 3 element(s) shown" in head[0], lines
    lines = run_cli("list").stdout.splitlines()
    assert any(ln.startswith("array ") and "3 element(s):" in ln for ln in lines), lines


def test_a_user_error_in_a_notebook_shows_its_cause_s_line() -> None:
    """review33 F8: the message-only display (review32 F3) hid ``raise ... from exc``."""
    try:
        try:
            raise OSError(13, "Permission denied")
        except OSError as exc:
            raise UserError("cannot read the arguments file a.h5") from exc
    except UserError as err:
        lines = err._render_traceback_()
    assert lines[0] == "UserError: cannot read the arguments file a.h5"
    assert lines[-1] == "(caused by PermissionError: [Errno 13] Permission denied)"
