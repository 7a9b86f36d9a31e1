"""Slurm job ids are per cluster: a job dir on a file system two clusters share must
never take another cluster's job of the same id for its own (its state, its cancel)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.early_jobs import Context, Early
from tests.slurm.sbatch_util import sacct_state, sbatch
from tests.slurm.test_submit import LONG, status_json, submit, wait_state, write_program

pytestmark = pytest.mark.slurm


def _squeued(slurm_id: str) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True, timeout=30
    )
    return bool(out.stdout.strip())


def test_a_job_of_another_cluster_is_never_asked_about_nor_cancelled_here(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    prog = write_program(tmp_path / "long", "long.py", LONG)
    ids = submit(str(prog), "--sbatch", "begin=now+3600")
    job_dir = Path(ids["job_dir"])
    here = (job_dir / "slurm_cluster").read_text().strip()
    assert here  # the dev cluster's ClusterName, recorded at submit
    subprocess.run(["scancel", ids["slurm_job_id"]], timeout=30, check=False)
    # Another cluster sharing the file system: the same ids name other jobs here.
    failed = sbatch("-o", "/dev/null", "--wrap", "false")
    pending = sbatch("-o", "/dev/null", "--begin=now+3600", "--wrap", "sleep 600")
    try:
        deadline = time.monotonic() + 60
        while not sacct_state(failed).startswith("FAILED"):
            assert time.monotonic() < deadline, sacct_state(failed)
            time.sleep(0.5)
        (job_dir / "slurm_cluster").write_text("elsewhere\n")
        (job_dir / "slurm_job_id").write_text(failed + "\n")
        meta = status_json(ids["job_id"])
        # Was: FAILED "the Slurm job ended FAILED (exit code 1) ..." from this
        # cluster's unrelated job, written into the job dir for good.
        assert meta["state"] == "QUEUED", meta
        assert meta["slurm_state"] == "UNKNOWN"
        assert "cluster 'elsewhere'" in str(meta.get("sub_status")), meta
        assert not (job_dir / "slurm_state.json").exists()
        (job_dir / "slurm_job_id").write_text(pending + "\n")
        out = run_cli("cancel", ids["job_id"], timeout=60)
        assert out.returncode == 2, out
        assert f"Slurm job {pending} runs on cluster 'elsewhere'" in out.stderr
        assert f"talk to cluster {here!r}" in out.stderr and "Traceback" not in out.stderr
        assert _squeued(pending)  # the other job was not cancelled
        (job_dir / "slurm_cluster").write_text(here + "\n")
        assert run_cli("cancel", ids["job_id"], timeout=60).returncode == 0
        assert not _squeued(pending) or "CANCELLED" in sacct_state(pending)
    finally:
        subprocess.run(["scancel", pending], timeout=30, check=False)


RESUMABLE = """
import os
import time
from pathlib import Path
from qshpc import distribute_task, get, save_result

here = Path(os.environ["QSHPC_TEST_DIR"])

@distribute_task()
def square(i):
    with open(here / "ran.txt", "a") as f:
        f.write(f"{i}\\n")
    return i * i

first = [get(square(i)) for i in range(6)]
while not (here / "go").exists():
    time.sleep(0.2)
save_result({"squares": first + get([square(i) for i in range(6, 9)])})
"""


def _launch_resume(ctx: Context) -> dict[str, Any]:
    """Submit RESUMABLE, cancel it after its first six tasks, resume it with a new time
    limit and wait for its end, from the session's start (tests/early_jobs.py: ~15 s of
    Slurm's waits that overlap the other tests); the test checks what this returns."""
    prog = write_program(ctx.work / "prog", "resumable.py", RESUMABLE)
    ctx.env["QSHPC_TEST_DIR"] = str(ctx.work)  # the batch job inherits it
    ids = submit(str(prog), "--ntasks-per-node", "2", "--time-min", "5", cli=ctx.qshpc)
    ctx.slurm_job(ids["slurm_job_id"])
    ran = ctx.work / "ran.txt"
    deadline = time.monotonic() + 120
    while not ran.exists() or len(ran.read_text().split()) < 6:
        assert time.monotonic() < deadline, "the first six tasks never ran"
        ctx.sleep(0.3)
    seen: dict[str, Any] = {"ids": ids}
    seen["refused"] = ctx.qshpc("submit", "--resume", ids["job_id"], timeout=60)
    seen["cancel"] = ctx.qshpc("cancel", ids["job_id"], timeout=60)
    wait_state(ids["job_id"], {"CANCELED"}, 60, ctx.qshpc, ctx.sleep, every=2)
    (ctx.work / "go").touch()
    seen["bad"] = [
        (why, ctx.qshpc("submit", "--resume", ids["job_id"], *bad, timeout=60))
        for bad, why in (
            (["x.py"], "leave out PROGRAM"),
            (["--seed", "3"], "leave out --seed"),
            (["--nodes", "0"], "nodes=0"),
        )
    ]
    out = ctx.qshpc("submit", "--resume", ids["job_id"], "--time-min", "7", "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    seen["again"] = again = json.loads(out.stdout)
    ctx.slurm_job(again["slurm_job_id"])
    seen["resumed"] = status_json(ids["job_id"], ctx.qshpc)
    seen["ended"] = wait_state(
        ids["job_id"], {"SUCCEEDED", "FAILED", "CANCELED"}, 120, ctx.qshpc, ctx.sleep, every=2
    )
    seen["result"] = ctx.qshpc("result", ids["job_id"], "--json", timeout=60)
    seen["ran"] = ran.read_text()
    limit: list[str] = []
    deadline = time.monotonic() + 30
    while not limit and time.monotonic() < deadline:  # slurmdbd may lag the job's end
        limit = ctx.run(
            ["sacct", "-X", "-n", "-P", "-j", again["slurm_job_id"], "--format=TimelimitRaw"]
        ).stdout.split()
        ctx.sleep(0.0 if limit else 0.5)
    seen["limit"] = limit
    seen["done"] = ctx.qshpc("submit", "--resume", ids["job_id"], timeout=60)
    return seen


@pytest.mark.early(launch=_launch_resume)
def test_submit_resume_runs_an_ended_job_again_with_new_resources(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    ids, again, refused = seen["ids"], seen["again"], seen["refused"]
    assert refused.returncode == 2 and "is RUNNING" in refused.stderr, refused
    assert seen["cancel"].returncode == 0
    for why, out in seen["bad"]:
        assert out.returncode == 2 and why in out.stderr and "Traceback" not in out.stderr
    assert again["job_id"] == ids["job_id"] and again["slurm_job_id"] != ids["slurm_job_id"]
    meta = seen["resumed"]  # QUEUED or already RUNNING/SUCCEEDED: never CANCELED
    assert meta["state"] in ("QUEUED", "RUNNING", "SUCCEEDED"), meta
    meta = seen["ended"]
    assert meta["state"] == "SUCCEEDED", meta
    assert meta["slurm_job_id"] == again["slurm_job_id"]
    assert json.loads(seen["result"].stdout) == {"squares": [i * i for i in range(9)]}
    # The six stored results were not computed again.
    assert sorted(map(int, seen["ran"].split())) == list(range(9))
    assert seen["limit"][:1] == ["7"], seen["limit"]
    done = seen["done"]
    assert done.returncode == 2 and "already SUCCEEDED" in done.stderr
