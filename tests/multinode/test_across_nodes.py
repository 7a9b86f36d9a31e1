"""qshpc jobs really span nodes on the 3-node dev cluster (n1..n3, network namespaces).

Needs ``make slurm-up NODES=3``. Each test checks, from the job store, that
ranks sat on two hosts and that tasks ran on both; the traffic test checks
that the bytes between ranks went over each node's ``eth0`` (TCP over the
veth), not through shared memory.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from mn_util import (
    EXAMPLES,
    PROGRAMS,
    SBATCH_EXAMPLE,
    assert_program_4_result,
    circuits_args,
    hosts_of_ranks,
    qshpc,
    read_tasks,
    record_figure,
    sbatch,
    sh,
    status_json,
    submit_available,
    wait_slurm,
)

pytestmark = [pytest.mark.multinode, pytest.mark.slurm]


def test_tmp_path_is_shared_with_the_nodes(multinode_env: dict[str, str], tmp_path: Path) -> None:
    """Job folders under tmp_path: every node namespace sees the host's file."""
    marker = tmp_path / "marker.txt"
    marker.write_text("from the host\n")
    out = sh(["srun", "-N3", "-n3", "cat", str(marker)], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["from the host"] * 3


def test_sbatch_example_runs_program_4_across_nodes(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """slurm/examples/run_multinode.sbatch (--nodes=2 --ntasks-per-node=2) runs the seed program."""
    args = tmp_path / "args.h5"
    circuits = circuits_args(args, 8)
    job_dir = tmp_path / "job"
    env = {
        "PROGRAM": str(EXAMPLES / "program_4.py"),
        "ARGS": str(args),
        "JOB_DIR": str(job_dir),
        "QSHPC_PYTHON": sys.executable,
    }
    t0 = time.monotonic()
    slurm_id = sbatch(SBATCH_EXAMPLE, "-o", str(tmp_path / "slurm-%j.out"), env=env)
    raw = wait_slurm(slurm_id, timeout=120)
    elapsed = time.monotonic() - t0
    out_text = (tmp_path / f"slurm-{slurm_id}.out").read_text()
    assert raw == "COMPLETED", out_text

    meta = status_json(job_dir)
    assert meta["state"] == "SUCCEEDED", meta.get("error")
    ranks = hosts_of_ranks(meta)
    assert sorted(ranks) == [0, 1, 2, 3]
    # Slurm's block distribution: ranks 0,1 on the first node, 2,3 on the second
    assert ranks[0] == ranks[1] and ranks[2] == ranks[3] and ranks[0] != ranks[2], ranks
    assert set(ranks.values()) <= {"n1", "n2", "n3"}
    assert [r["local_rank"] for r in sorted(meta["ranks"], key=lambda r: r["rank"])] == [0, 1, 0, 1]

    tasks = read_tasks(job_dir)
    assert len(tasks) == 8 and all(t["state"] == "SUCCEEDED" for t in tasks)
    task_hosts = {t["host"] for t in tasks}
    assert task_hosts == set(ranks.values()), f"tasks ran on {task_hosts}, ranks on {ranks}"
    assert all(ranks[int(t["rank"])] == t["host"] for t in tasks)

    res = qshpc("result", str(job_dir), "--allow-pickle", "--json")
    assert res.returncode == 0, res.stderr
    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        assert_program_4_result(r.result(allow_pickle=True), circuits)
    logs = qshpc("logs", str(job_dir))
    assert logs.returncode == 0 and "rank-3.out" in logs.stdout
    record_figure(
        "sbatch_program_4",
        slurm_id=slurm_id,
        submit_to_completed_s=round(elapsed, 2),
        ranks=ranks,
        tasks_per_host={h: sum(t["host"] == h for t in tasks) for h in sorted(task_hosts)},
    )


@pytest.mark.skipif(not submit_available(), reason="`qshpc submit` is not there yet")
def test_submit_runs_program_4_across_nodes(
    multinode_env: dict[str, str], tmp_path: Path, qshpc_home: Path
) -> None:
    """``qshpc submit --nodes 2 --ntasks-per-node 2 examples/program_4.py --arguments ARGS``."""
    args = tmp_path / "args.h5"
    circuits = circuits_args(args, 8)
    t0 = time.monotonic()
    out = qshpc(
        "submit",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "2",
        "--time-min",
        "5",
        str(EXAMPLES / "program_4.py"),
        "--arguments",
        str(args),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    import json

    ids = json.loads(out.stdout)
    job_id, slurm_id = ids["job_id"], str(ids["slurm_job_id"])
    try:
        waited = qshpc("wait", job_id, "--timeout", "120", timeout=150)
        elapsed = time.monotonic() - t0
        assert waited.returncode == 0, waited.stdout + waited.stderr
        meta = status_json(job_id)
        assert meta["state"] == "SUCCEEDED", meta.get("error")
        assert str(meta.get("slurm_job_id")) == slurm_id
        ranks = hosts_of_ranks(meta)
        assert sorted(ranks) == [0, 1, 2, 3]
        assert len(set(ranks.values())) == 2, ranks
        assert ranks[0] == ranks[1] and ranks[2] == ranks[3]
        job_dir = Path(meta["job_dir"])
        tasks = read_tasks(job_dir)
        assert len(tasks) == 8 and all(t["state"] == "SUCCEEDED" for t in tasks)
        assert {t["host"] for t in tasks} == set(ranks.values())
        from qshpc.store import JobReader

        with JobReader.open(job_dir) as r:
            assert_program_4_result(r.result(allow_pickle=True), circuits)
        record_figure(
            "submit_program_4",
            slurm_id=slurm_id,
            submit_to_succeeded_s=round(elapsed, 2),
            ranks=ranks,
            tasks_per_host={
                h: sum(t["host"] == h for t in tasks) for h in sorted(set(ranks.values()))
            },
        )
    finally:
        state = wait_slurm_or_cancel(slurm_id, 30)
    # The allocation must end with the program: a job that lingers holds its nodes.
    assert state == "COMPLETED", (
        f"Slurm job {slurm_id} still {state!r} 30 s after the qshpc job SUCCEEDED"
    )


def wait_slurm_or_cancel(slurm_id: str, timeout: float) -> str:
    """Slurm's raw state once ended; after ``timeout`` s scancel it and return the state then."""
    from mn_util import SLURM_TERMINAL, sacct_state

    deadline = time.monotonic() + timeout
    state = sacct_state(slurm_id)
    while state not in SLURM_TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        state = sacct_state(slurm_id)
    if state not in SLURM_TERMINAL:
        sh(["scancel", slurm_id])
    return state


TRAFFIC_SBATCH = """#!/bin/bash
#SBATCH --job-name=qshpc-traffic
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=00:05:00
# run_multinode.sbatch plus a probe of each node's interface counters before and after
set -euo pipefail
probe() {
    srun --ntasks-per-node=1 --ntasks="$SLURM_NNODES" --mpi=none \\
        bash -c 'cat /proc/net/dev > "$0/$1-$(hostname).txt"' "$PROBES" "$1"
}
probe before
srun --mpi=pmi2 "$QSHPC_PYTHON" -m qshpc run "$PROGRAM" --arguments "$ARGS" --job-dir "$JOB_DIR"
probe after
"""


def read_netdev(path: Path) -> dict[str, tuple[int, int]]:
    """Interface -> (received bytes, transmitted bytes) from a copy of /proc/net/dev."""
    found: dict[str, tuple[int, int]] = {}
    for line in path.read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) >= 9:
            found[name.strip()] = (int(fields[0]), int(fields[8]))
    return found


def test_task_data_crosses_the_network(multinode_env: dict[str, str], tmp_path: Path) -> None:
    """Tasks move 4 MB each way; the worker node's eth0 counters must grow by at least that.

    Each node has its own IPC and PID namespaces (slurm/devcluster.sh), so MPI
    (UCX) cannot use shared memory between nodes: without them 0 bytes crossed
    the veth (shared/FACTS.md). Other jobs on the cluster can only add bytes,
    so the check is a lower bound: what the tasks on the other node received
    and sent back.
    """
    n_tasks, mb = 12, 4.0
    size = int(mb * 1024 * 1024)
    script = tmp_path / "traffic.sbatch"
    script.write_text(TRAFFIC_SBATCH)
    probes = tmp_path / "probes"
    probes.mkdir()
    args = tmp_path / "args.json"
    args.write_text(f'{{"n": {n_tasks}, "mb": {mb}}}')
    job_dir = tmp_path / "job"
    env = {
        "PROGRAM": str(PROGRAMS / "multinode_traffic.py"),
        "ARGS": str(args),
        "JOB_DIR": str(job_dir),
        "QSHPC_PYTHON": sys.executable,
        "PROBES": str(probes),
    }
    t0 = time.monotonic()
    slurm_id = sbatch(script, "-o", str(tmp_path / "slurm-%j.out"), env=env)
    raw = wait_slurm(slurm_id, timeout=180)
    elapsed = time.monotonic() - t0
    assert raw == "COMPLETED", (tmp_path / f"slurm-{slurm_id}.out").read_text()

    meta = status_json(job_dir)
    assert meta["state"] == "SUCCEEDED", meta.get("error")
    ranks = hosts_of_ranks(meta)
    head = ranks[0]
    other = {h for h in ranks.values() if h != head}
    assert len(other) == 1, ranks
    (far,) = other

    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        result = r.result(allow_pickle=True)
    rows = result["tasks"]
    assert len(rows) == n_tasks and all(row["received"] == size for row in rows)
    far_rows = [row for row in rows if row["host"] == far]
    assert far_rows, f"no task ran on {far}: {rows}"
    far_in = sum(row["received"] for row in far_rows)
    far_out = sum(row["sent"] for row in far_rows)

    counters = {}
    for host in (head, far):
        before = read_netdev(probes / f"before-{host}.txt")
        after = read_netdev(probes / f"after-{host}.txt")
        assert "eth0" in before, f"{host} has no eth0: {sorted(before)}"
        counters[host] = {
            "rx": after["eth0"][0] - before["eth0"][0],
            "tx": after["eth0"][1] - before["eth0"][1],
        }
    # what the far node's tasks received came in on its eth0 and left the head node's
    assert counters[far]["rx"] >= far_in, (counters, far_in)
    assert counters[head]["tx"] >= far_in, (counters, far_in)
    # and what they returned went back the other way
    assert counters[far]["tx"] >= far_out, (counters, far_out)
    assert counters[head]["rx"] >= far_out, (counters, far_out)
    record_figure(
        "traffic",
        slurm_id=slurm_id,
        submit_to_completed_s=round(elapsed, 2),
        tasks_on_far_node=len(far_rows),
        payload_to_far_mb=round(far_in / 2**20, 1),
        payload_from_far_mb=round(far_out / 2**20, 1),
        eth0_mb={h: {k: round(v / 2**20, 1) for k, v in c.items()} for h, c in counters.items()},
        ucx_tls=os.environ.get("UCX_TLS"),
    )


def test_status_and_logs_show_each_ranks_host(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """What docs/multinode.md tells users to check: `qshpc status` lists the hosts."""
    job_dir = tmp_path / "job"
    args = tmp_path / "args.json"
    args.write_text('{"n": 12}')
    env = {
        "PROGRAM": str(PROGRAMS / "squares.py"),
        "ARGS": str(args),
        "JOB_DIR": str(job_dir),
        "QSHPC_PYTHON": sys.executable,
    }
    slurm_id = sbatch(
        SBATCH_EXAMPLE, "--nodes=3", "--ntasks-per-node=1", "-o", str(tmp_path / "o-%j"), env=env
    )
    assert wait_slurm(slurm_id, timeout=120) == "COMPLETED"
    text = qshpc("status", str(job_dir)).stdout
    assert re.search(r"ranks\s+3 on n1, n2, n3", text), text
    meta = status_json(job_dir)
    assert [r["host"] for r in sorted(meta["ranks"], key=lambda r: r["rank"])] == [
        "n1",
        "n2",
        "n3",
    ]
