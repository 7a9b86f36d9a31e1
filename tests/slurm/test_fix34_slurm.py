"""Session 24's fix34 on the dev cluster: what review34 found (main 6f8af80).

F1: ``qshpc cancel`` of the array element whose raw Slurm id is the array's own id
(Slurm gives it to the highest index) ran ``scancel ARRAY``: every element ended
CANCELLED. F2: the same raw id made ``job_over`` ask ``squeue -j ARRAY``, which lists the
other, live elements, so a resume of that element was refused as "being run".
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm

SLEEPER = """
import time
from qshpc import get_arguments, save_result

time.sleep(get_arguments()["s"])
save_result({"done": True})
"""


def _squeue(array: str) -> dict[str, tuple[str, str]]:
    """``{element id: (raw id, state)}`` of the array's elements squeue lists."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-j", array, "-o", "%i %A %T"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return {r[0]: (r[1], r[2]) for r in rows if len(r) == 3}


def test_cancel_of_the_element_with_the_arrays_raw_id_leaves_the_others(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    from qshpc.store.lock import read_holder
    from qshpc.submit.slurm import job_over

    work = tmp_path / "work"
    work.mkdir()
    (work / "sleep.py").write_text(SLEEPER)
    (work / "sets.json").write_text(json.dumps([{"s": 300}] * 3))
    out = run_cli(
        "submit",
        str(work / "sleep.py"),
        "--array",
        str(work / "sets.json"),
        *"--ntasks-per-node 1 --time-min 8 --json".split(),
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    elements = json.loads(out.stdout)
    array = str(elements[0]["slurm_job_id"]).split("_")[0]
    try:
        dirs = {str(e["slurm_job_id"]): Path(e["job_dir"]) for e in elements}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every element running, its run holding the lock
            live = _squeue(array)
            held = {i: read_holder(d) for i, d in dirs.items()}
            if all(h is not None and h.slurm_job for h in held.values()) and all(
                live.get(i, ("", ""))[1] == "RUNNING" for i in dirs
            ):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the elements did not all run: {_squeue(array)}")
        for element, holder in held.items():
            assert holder is not None and holder.slurm_job == element  # the element's own id
        same = [i for i, (raw, _) in live.items() if raw == array]
        assert same, f"no element has the array's raw id {array}: {live}"
        target = same[0]
        others = [i for i in dirs if i != target]

        cancel = run_cli("cancel", target, timeout=60)
        assert cancel.returncode == 0, cancel.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and target in _squeue(array):
            time.sleep(1)
        time.sleep(3)  # (a whole-array scancel would have reached the others by now)
        live = _squeue(array)
        assert target not in live
        assert all(live.get(i, ("", ""))[1] == "RUNNING" for i in others), live

        # F2: Slurm is asked about the element, not the array whose other elements run
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not job_over(target):
            time.sleep(1)
        assert job_over(target)
        assert not job_over(others[0])
        status = run_cli("status", target, "--json", timeout=60)
        assert json.loads(status.stdout)["state"] == "CANCELED"
        for i in others:
            status = run_cli("status", i, "--json", timeout=60)
            assert json.loads(status.stdout)["state"] == "RUNNING", status.stdout
    finally:
        subprocess.run(["scancel", array], timeout=30, check=False)


def _team_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A team store per docs/store.md, set up without its ``jobs/`` and ``arrays/``."""
    import os

    home = tmp_path / "team"
    home.mkdir()
    os.chmod(home, 0o3770)
    monkeypatch.setenv("QSHPC_HOME", str(home))
    monkeypatch.setenv("QSHPC_SHARE_GROUP", "1")
    return home


@pytest.mark.parametrize("array", [False, True])
def test_the_first_submit_in_a_team_store_makes_jobs_3770(
    slurm_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, array: bool
) -> None:
    """review34 F4: the first ``qshpc submit`` made ``jobs/`` 2750 (as the parent of the
    job's folder), and every other member's submit and run were refused."""
    import stat

    home = _team_home(tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    (work / "sleep.py").write_text(SLEEPER)
    (work / "sets.json").write_text(json.dumps([{"s": 1}]))
    (work / "one.json").write_text(json.dumps({"s": 1}))
    how = ["--array", str(work / "sets.json")] if array else ["--arguments", str(work / "one.json")]
    out = run_cli(
        "submit", str(work / "sleep.py"), *how, "--sbatch", "begin=now+300", "--json", timeout=90
    )
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    ids = [str(e["slurm_job_id"]) for e in (made if array else [made])]
    try:
        assert stat.S_IMODE((home / "jobs").stat().st_mode) == 0o3770
        if array:
            assert stat.S_IMODE((home / "arrays").stat().st_mode) == 0o3770
    finally:
        subprocess.run(["scancel", *ids], timeout=30, check=False)


NAPS = """
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def nap(i: int) -> int:
    time.sleep(0.5)
    return i * i

save_result({"sq": get([nap(i) for i in range(40)])})
"""


def test_a_requeued_example_batch_job_resumes_its_job(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """review34 F3: requeued (``scontrol requeue``, or a node failure with Slurm's default
    Requeue=1), the restarted ``srun ... qshpc run`` of slurm/examples/run_multinode.sbatch
    exited 2 "already ran (CANCELED)" and the job ended FAILED. The example now resumes."""
    import os

    from tests.conftest import ROOT
    from tests.slurm.sbatch_util import sbatch, slurm_field, wait_terminal

    work = tmp_path / "work"
    work.mkdir()
    (work / "naps.py").write_text(NAPS)
    job_dir = tmp_path / "jobdir"
    env = {**os.environ, "PROGRAM": str(work / "naps.py"), "JOB_DIR": str(job_dir)}
    env["PYTHONPATH"] = str(ROOT)
    script = str(ROOT / "slurm/examples/run_multinode.sbatch")
    job = sbatch("--chdir", str(work), "--time", "5", script, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (job_dir / "job.h5").exists():
            time.sleep(0.5)
        time.sleep(4)  # some tasks done
        requeue = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=30
        )
        assert requeue.returncode == 0, requeue.stderr
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and slurm_field(job, "Restarts") != "1":
            time.sleep(0.5)
        first = {}
        while time.monotonic() < deadline:  # the first run ended (Slurm holds the job)
            first = json.loads(run_cli("status", str(job_dir), "--json", timeout=60).stdout)
            if first["state"] != "RUNNING" or "requeued" in str(first.get("sub_status")):
                break
            time.sleep(0.5)
        # (it was CANCELED: a `qshpc wait` returned while Slurm held the job)
        assert first["state"] == "RUNNING" and "requeued" in first["sub_status"], first
        while time.monotonic() < deadline and slurm_field(job, "JobState") != "RUNNING":
            subprocess.run(
                ["scontrol", "update", f"jobid={job}", "StartTime=now"],
                capture_output=True,
                timeout=30,
            )
            time.sleep(1)
        assert wait_terminal(job, 180) == "COMPLETED"
        status = run_cli("status", str(job_dir), "--json", timeout=60)
        meta = json.loads(status.stdout)
        assert meta["state"] == "SUCCEEDED", status.stdout
        assert meta["runs"] == 2, meta  # the first run and the resumed one
        result = run_cli("result", str(job_dir), "--json", timeout=60)
        assert json.loads(result.stdout) == {"sq": [i * i for i in range(40)]}, result.stdout
        log = (work / f"qshpc-{job}.out").read_text()
        assert log.count(f"qshpc: job {job},") == 2  # the first run's lines kept (append)
    finally:
        subprocess.run(["scancel", job], timeout=30, check=False)
