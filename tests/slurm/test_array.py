"""Job arrays on the dev Slurm cluster: ``qshpc submit --array`` and ``SlurmClient.map``.

One Slurm job array, one qshpc job record per element; an element that fails
never stops the others' results.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.early_jobs import Context, Early

pytestmark = pytest.mark.slurm

SWEEP = """
from qshpc import get_arguments, save_result

x = get_arguments()["x"]
if x == 1:
    raise ValueError(f"element with x={x} fails")
save_result({"x": x, "square": x * x})
"""


# How the helpers run qshpc: run_cli in the test, Context.qshpc in an early launch.
Cli = Callable[..., subprocess.CompletedProcess[str]]


def status_json(job: str, cli: Cli = run_cli) -> dict[str, Any]:
    out = cli("status", job, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    meta: dict[str, Any] = json.loads(out.stdout)
    return meta


def wait_all(
    jobs: list[str],
    timeout: float = 240,
    cli: Cli = run_cli,
    sleep: Callable[[float], None] = time.sleep,
    every: float = 1,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    metas: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        metas = [status_json(j, cli) for j in jobs]
        if all(m["state"] in ("SUCCEEDED", "FAILED", "CANCELED") for m in metas):
            return metas
        sleep(every)
    pytest.fail(f"array not finished after {timeout}s: {[(m['id'], m['state']) for m in metas]}")


def test_submit_array_one_failure(slurm_env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    (work / "sets.json").write_text(json.dumps([{"x": 0}, {"x": 1}]))
    (work / "two.json").write_text(json.dumps({"x": 2}))
    out = run_cli(
        "submit",
        str(work / "sweep.py"),
        "--array",
        str(work / "sets.json"),
        "--array",
        str(work / "two.json"),
        "--ntasks-per-node",
        "1",
        "--time-min",
        "5",
        "--json",
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    elements = json.loads(out.stdout)
    assert [e["array_index"] for e in elements] == [0, 1, 2]
    array_id = elements[0]["array_id"]
    slurm_array = elements[0]["slurm_job_id"].split("_")[0]
    assert [e["slurm_job_id"] for e in elements] == [f"{slurm_array}_{i}" for i in range(3)]
    assert [e["job_id"] for e in elements] == [f"{array_id}-{i}" for i in range(3)]

    metas = wait_all([e["job_id"] for e in elements])
    assert [m["state"] for m in metas] == ["SUCCEEDED", "FAILED", "SUCCEEDED"], metas
    assert all(m["array_id"] == array_id for m in metas)
    assert "element with x=1 fails" in metas[1]["error"]
    for i in (0, 2):
        res = run_cli("result", elements[i]["job_id"], "--json", timeout=60)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == {"x": i, "square": i * i}
    # The Slurm element id finds the job too.
    assert status_json(f"{slurm_array}_2")["id"] == elements[2]["job_id"]
    assert metas[1]["slurm_state"] == "FAILED"

    listing = run_cli("list", timeout=90)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith(f"array {array_id}"))
    assert "3 element(s): 1 FAILED, 2 SUCCEEDED" in lines[head]
    assert [ln.split()[0] for ln in lines[head + 1 : head + 4]] == [e["job_id"] for e in elements]
    only = run_cli("list", "--array", array_id, timeout=90)
    assert only.returncode == 0 and only.stdout.count(f"{slurm_array}_") == 3, only.stdout
    logs = run_cli("logs", elements[1]["job_id"], timeout=60)
    assert "x=1 fails" in logs.stdout


def test_slurm_client_map(slurm_env: dict[str, str], tmp_path: Path) -> None:
    from qshpc import Program, SlurmClient

    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    program = Program(title="sweep", entrypoint="sweep.py", working_dir=str(work))
    jobs = SlurmClient(ntasks_per_node=1, time_min=5).map(program, [{"x": 2}, {"x": 3}], seed=5)
    metas = [j.info() for j in jobs]
    assert [m["array_index"] for m in metas] == [0, 1]
    assert metas[0]["slurm_job_id"].endswith("_0") and metas[1]["slurm_job_id"].endswith("_1")
    assert [j.result(timeout=240) for j in jobs] == [{"x": 2, "square": 4}, {"x": 3, "square": 9}]
    assert all(j.info()["seed"] == 5 for j in jobs)


def test_array_dry_run(slurm_env: dict[str, str], tmp_path: Path, qshpc_home: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    (work / "sets.json").write_text(json.dumps([{"x": 0}, {"x": 1}, {"x": 2}]))
    out = run_cli("submit", str(work / "sweep.py"), "--array", str(work / "sets.json"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --array=0-2%3" in out.stdout
    assert not (qshpc_home / "jobs").exists()
    both = run_cli(
        "submit",
        str(work / "sweep.py"),
        "--array",
        str(work / "sets.json"),
        "--arguments",
        str(work / "sets.json"),
    )
    assert both.returncode == 2 and "not both" in both.stderr
    (work / "bad.json").write_text(json.dumps([{"x": 0}, 3]))
    bad = run_cli("submit", str(work / "sweep.py"), "--array", str(work / "bad.json"), "--dry-run")
    assert bad.returncode == 2 and "entry 1" in bad.stderr


def test_cancel_pending_element(slurm_env: dict[str, str], tmp_path: Path) -> None:
    """Slurm's accounting may never list a pending element cancelled alone: qshpc records it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    (work / "sets.json").write_text(json.dumps([{"x": 0}, {"x": 2}]))
    out = run_cli(
        "submit",
        str(work / "sweep.py"),
        "--array",
        str(work / "sets.json"),
        "--ntasks-per-node",
        "1",
        "--sbatch",
        "begin=now+300",
        "--json",
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    elements = json.loads(out.stdout)
    try:
        assert status_json(elements[1]["slurm_job_id"])["state"] == "QUEUED"
        assert run_cli("cancel", elements[1]["slurm_job_id"], timeout=60).returncode == 0
        assert status_json(elements[1]["job_id"])["state"] == "CANCELED"
        assert status_json(elements[0]["job_id"])["state"] == "QUEUED"
    finally:
        run_cli("cancel", elements[0]["job_id"], timeout=60)
    assert wait_all([e["job_id"] for e in elements], timeout=60)[0]["state"] == "CANCELED"


TIMEOUT_SWEEP = """
import time
from qshpc import get_arguments, save_result

x = get_arguments()["x"]
if x == 1:
    time.sleep(600)
save_result({"x": x})
"""


def _launch_timed_out_element(ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Submit the sweep (element 1 hits its 1-minute limit) and wait for all three to end."""
    work = ctx.work / "work"
    work.mkdir()
    (work / "sweep.py").write_text(TIMEOUT_SWEEP)
    (work / "sets.json").write_text(json.dumps([{"x": 0}, {"x": 1}, {"x": 2}]))
    out = ctx.qshpc(
        "submit",
        str(work / "sweep.py"),
        "--array",
        str(work / "sets.json"),
        "--ntasks-per-node",
        "1",
        "--time-min",
        "1",
        "--json",
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    elements: list[dict[str, Any]] = json.loads(out.stdout)
    for e in elements:
        ctx.slurm_job(e["slurm_job_id"])
    ctx.wait_slurm_gone([str(e["slurm_job_id"]) for e in elements], 300)
    metas = wait_all([e["job_id"] for e in elements], 300, ctx.qshpc, ctx.sleep, every=2)
    return elements, metas


@pytest.mark.slow
@pytest.mark.early(launch=_launch_timed_out_element)
def test_timed_out_element_leaves_the_others(
    slurm_env: dict[str, str],
    early_job: Early,
) -> None:
    elements, metas = early_job.outcome()
    assert [m["state"] for m in metas] == ["SUCCEEDED", "FAILED", "SUCCEEDED"], metas
    assert "time limit" in metas[1]["error"]
    for i in (0, 2):
        res = run_cli("result", elements[i]["job_id"], "--json", timeout=60)
        assert json.loads(res.stdout) == {"x": i}
