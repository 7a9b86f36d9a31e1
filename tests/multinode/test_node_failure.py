"""A node dies in the middle of a 2-node job: the job ends FAILED in bounded time, and the
results of the tasks finished before the failure stay in the store.

Which node dies: the job runs on n2 and n3 (``--sbatch nodelist=n[2-3]``), so
rank 0 (the program and the store's writer) sits on n2, the first node of
Slurm's block distribution, and n3, which holds worker ranks 2 and 3, is
killed. That is the case where the runtime must notice something: rank 0
lives on, waiting for batches that will never come back. (When rank 0's own
node dies, nothing is left to notice: the store keeps its last commit and the
client takes FAILED from Slurm's NODE_FAIL.) n1 is left alone because other
2-node jobs land there first.

How it dies: SIGKILL to the node's slurmd, which is pid 1 of the node's PID
namespace (slurm/devcluster.sh records the host pid of its ``unshare`` in
``$QSHPC_SLURM_DIR/run/node-n3.pid``): the kernel then kills every process of
the node (slurmstepd, the ranks) at once, as a power loss would. Afterwards
``slurm/devcluster.sh up`` restarts the node's slurmd and the test waits until
n3 is usable again. The session's early jobs (tests/early_jobs.py), which may run
on n3, have ended before (``no_early_jobs``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from mn_util import (
    DEVCLUSTER,
    PROGRAMS,
    SLURM_DIR,
    SLURM_TERMINAL,
    qshpc,
    read_tasks,
    record_figure,
    sacct_state,
    sh,
    status_json,
    submit_available,
)

pytestmark = [pytest.mark.multinode, pytest.mark.slurm, pytest.mark.slow]

VICTIM = "n3"
FAIL_WITHIN_S = 120
READY = {"idle", "mixed", "allocated"}


def node_slurmd_pid(node: str) -> int:
    """Host pid of the node's slurmd: the child of the recorded ``unshare``."""
    unshare = int((SLURM_DIR / "run" / f"node-{node}.pid").read_text().split()[0])
    kids: list[int] = []
    for task in Path(f"/proc/{unshare}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    assert len(kids) == 1, f"unshare {unshare} of {node} has children {kids}"
    return kids[0]


def node_state(node: str) -> str:
    out = sh(["sinfo", "-h", "-n", node, "-o", "%T"], timeout=15)
    states = {s.strip() for s in out.stdout.split()}
    return ",".join(sorted(states)) or "unknown"


def restore_node(node: str, timeout: float = 90) -> str:
    """Restart dead daemons (devcluster ``up``) and wait until ``node`` takes jobs again."""
    up = sh(["bash", str(DEVCLUSTER), "up"], timeout=120)
    deadline = time.monotonic() + timeout
    resumed = False
    state = node_state(node)
    while time.monotonic() < deadline:
        state = node_state(node)
        if state in READY:
            return state
        if not resumed and time.monotonic() > deadline - timeout / 2:
            sh(["scontrol", "update", f"nodename={node}", "state=resume"], timeout=15)
            resumed = True
        time.sleep(0.5)
    raise AssertionError(f"{node} still {state} after restore; devcluster up said: {up.stderr}")


@pytest.mark.skipif(not submit_available(), reason="`qshpc submit` is not there yet")
def test_node_dies_job_fails_and_keeps_finished_results(
    no_early_jobs: None, multinode_env: dict[str, str], tmp_path: Path, qshpc_home: Path
) -> None:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"n": 600, "sleep": 0.5}))  # ~100 s on 3 workers: far past the kill
    out = qshpc(
        "submit",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "2",
        "--time-min",
        "10",
        "--sbatch",
        "nodelist=n[2-3]",
        str(PROGRAMS / "multinode_sleep.py"),
        "--arguments",
        str(args),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    job_id, slurm_id = ids["job_id"], str(ids["slurm_job_id"])
    killed_at = None
    try:
        # wait until some tasks finished, among them some on the victim
        deadline = time.monotonic() + 90
        meta: dict[str, object] = {}
        before: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            meta = status_json(job_id)
            assert meta["state"] in ("QUEUED", "RUNNING"), meta
            job_dir = Path(str(meta["job_dir"]))
            if (job_dir / "job.h5").exists() and meta.get("ranks"):
                before = [t for t in read_tasks(job_dir) if t["state"] == "SUCCEEDED"]
                if len(before) >= 20 and any(t["host"] == VICTIM for t in before):
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"no task finished on {VICTIM} within 90 s: {meta}")
        ranks = {int(r["rank"]): r["host"] for r in meta["ranks"]}  # type: ignore[union-attr]
        assert ranks[0] != VICTIM and VICTIM in ranks.values(), ranks

        os.kill(node_slurmd_pid(VICTIM), signal.SIGKILL)
        killed_at = time.monotonic()

        # the job must end, in qshpc's view and in Slurm's, within the bound
        state, raw = "", ""
        while time.monotonic() - killed_at < FAIL_WITHIN_S:
            meta = status_json(job_id)
            state, raw = str(meta["state"]), sacct_state(slurm_id)
            if state in ("SUCCEEDED", "FAILED", "CANCELED") and raw in SLURM_TERMINAL | {
                "PENDING",
                "REQUEUED",
            }:
                break
            time.sleep(1)
        failed_after = time.monotonic() - killed_at
        assert state == "FAILED", f"{failed_after:.0f}s after the kill: qshpc {state}, slurm {raw}"
        assert raw in ("NODE_FAIL", "FAILED", "PENDING", "REQUEUED"), raw
        text = qshpc("status", job_id).stdout
        assert text.startswith("FAILED"), text

        # results finished before the failure are kept, readable
        from qshpc.store import JobReader

        with JobReader.open(job_dir) as r:
            after = [t for t in r.tasks() if t["state"] == "SUCCEEDED"]
            kept = {t["task_id"] for t in after}
            assert {t["task_id"] for t in before} <= kept
            for t in after:
                value = r.task_result(t["task_id"], allow_pickle=True)
                assert value == {"i": int(t["task_id"]), "host": t["host"], "rank": t["rank"]}
        assert any(t["host"] == VICTIM for t in after)
        record_figure(
            "node_failure",
            slurm_id=slurm_id,
            victim=VICTIM,
            ranks=ranks,
            tasks_done_at_kill=len(before),
            tasks_kept=len(after),
            failed_after_kill_s=round(failed_after, 1),
            slurm_state_then=raw,
            slurm_state_cached=meta.get("slurm_state"),
            error=str(meta.get("error"))[:300],
        )
    finally:
        # Slurm requeues a NODE_FAIL batch job unless it was submitted with --no-requeue:
        # do not let it run again in this job's folder.
        sh(["scancel", slurm_id], timeout=15)
        if killed_at is not None:
            state_back = restore_node(VICTIM)
            record_figure(
                "node_restore",
                node=VICTIM,
                state=state_back,
                after_kill_s=round(time.monotonic() - killed_at, 1),
            )
