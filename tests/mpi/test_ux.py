"""Progress (pure formatting and live watch), list --since, rm, gc, plot on real jobs."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from qshpc import LocalClient, Program, open_job
from qshpc.cli.ux import collect, parse_age
from qshpc.errors import UserError
from qshpc.jobs.progress import (
    RateMeter,
    eta,
    format_duration,
    format_line,
    format_rate,
    snapshot,
    watch,
)
from tests.conftest import run_cli

DAY = 86400.0
SLOW = """
import time
from qshpc import distribute_task, get, get_arguments, save_result, update_status

@distribute_task()
def nap(i):
    time.sleep(0.25)
    return {0: 0.5, i % 4: 0.5} if i % 4 else {0: 1.0}

update_status("napping")
save_result({"results": get([nap(i) for i in range(get_arguments().get("n", 12))])})
"""


def meta(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "J",
        "state": "RUNNING",
        "sub_status": "batch 2",
        "started": 100.0,
    }
    base["task_counts"] = {"SUCCEEDED": kw.pop("done", 40), "FAILED": kw.pop("failed", 0)}
    return {**base, **kw}


# --- progress: pure formatting ----------------------------------------------------------


def test_line_without_a_known_total() -> None:
    s = snapshot(meta(), now=120.0)
    assert s.elapsed == 20.0 and s.total is None
    line = format_line(s)
    assert line == "[J] RUNNING: batch 2 | 40 tasks done | 2.0 tasks/s | elapsed 20s"
    assert eta(s, 2.0) is None


def test_line_with_total_failures_and_eta() -> None:
    s = snapshot(meta(tasks_total=100, failed=2), now=120.0)
    line = format_line(s, rate=2.0)
    assert "40/100 tasks done, 2 failed" in line and "ETA 29s" in line
    assert eta(s, 2.0) == 29.0


def test_queued_and_ended_lines() -> None:
    q = snapshot({"id": "J", "state": "QUEUED"}, now=5.0)
    assert format_line(q) == "[J] QUEUED | 0 tasks done"
    done = snapshot(meta(state="SUCCEEDED", finished=160.0, tasks_total=40), now=999.0)
    line = format_line(done)
    assert line.startswith("[J] SUCCEEDED | 40/40") and "elapsed 1m00s" in line
    assert "ETA" not in line and "batch 2" not in line


def test_durations_and_rates() -> None:
    assert [format_duration(x) for x in (None, 7, 185, 7380, 93600)] == [
        "-",
        "7s",
        "3m05s",
        "2h03m",
        "1d02h",
    ]
    assert format_rate(None) == "-" and format_rate(12.54) == "12.5 tasks/s"
    assert format_rate(0.05) == "3.0 tasks/min"


def test_rate_meter_uses_a_recent_window() -> None:
    m = RateMeter(window=10)
    assert m.rate() is None
    for t, n in ((0, 0), (5, 100), (10, 110), (20, 120)):
        m.add(float(t), n)
    assert m.rate() == pytest.approx(1.0)  # the last 10 s, not the fast start


# --- ages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secs"),
    [("30m", 1800), ("12h", 43200), ("2d", 2 * DAY), ("1w", 7 * DAY), ("1.5h", 5400)],
)
def test_parse_age(text: str, secs: float) -> None:
    assert parse_age(text) == secs


@pytest.mark.parametrize("text", ["", "2", "d", "2y", "-1d", "2 days"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(UserError, match=r"e\.g\. 30m, 12h, 2d, 1w"):
        parse_age(text)


# --- list / rm / gc on stores made by hand ----------------------------------------------


def fake_job(name: str, created: float, state: str | None = "SUCCEEDED") -> Path:
    """A job in the store created at ``created``; ended in ``state`` (None: left QUEUED)."""
    from qshpc.jobs.paths import jobs_root
    from qshpc.store import JobWriter, create_job

    job = jobs_root() / name
    create_job(job, {"id": name, "title": name, "created": created}, {})
    if state is not None:
        w = JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": created})
        w.finalize(state)
    return job


def test_list_since(qshpc_home: Path) -> None:
    fake_job("20200101-000000-old000", time.time() - 3 * DAY)
    fake_job("20990101-000000-new000", time.time() - 60)
    out = run_cli("list", "--since", "2d")
    assert out.returncode == 0 and "new000" in out.stdout and "old000" not in out.stdout
    assert "old000" in run_cli("list", "--since", "1w").stdout
    bad = run_cli("list", "--since", "yesterday")
    assert bad.returncode == 2 and "e.g. 30m, 12h, 2d, 1w" in bad.stderr


def test_list_json(qshpc_home: Path) -> None:
    fake_job("20200101-000000-old000", time.time() - 3 * DAY)
    fake_job("20990101-000000-new000", time.time() - 60, "FAILED")
    bad = qshpc_home / "jobs" / "20990101-000000-bad000"
    bad.mkdir(parents=True)
    (bad / "job.h5").write_bytes(b"not hdf5")
    out = run_cli("list", "--json")
    assert out.returncode == 0, out.stderr
    jobs = json.loads(out.stdout)
    by_id = {j["id"]: j for j in jobs}
    assert by_id["20990101-000000-new000"]["state"] == "FAILED"
    assert by_id["20200101-000000-old000"]["state"] == "SUCCEEDED"
    assert by_id["20990101-000000-bad000"]["state"] in ("DAMAGED", "UNREADABLE")
    assert all(Path(j["job_dir"]).name == j["id"] for j in jobs)
    failed = json.loads(run_cli("list", "--json", "--state", "failed").stdout)
    assert [j["id"] for j in failed] == ["20990101-000000-new000"]
    assert len(json.loads(run_cli("list", "--json", "-n", "1").stdout)) == 1


def test_rm_refuses_active_jobs_without_force(qshpc_home: Path) -> None:
    done = fake_job("20260101-000000-done00", time.time())
    queued = fake_job("20260101-000000-queued", time.time(), state=None)
    out = run_cli("rm", queued.name)
    assert out.returncode == 2 and "is QUEUED" in out.stderr and "--force" in out.stderr
    assert "qshpc cancel" in out.stderr and queued.is_dir()
    out = run_cli("rm", done.name)
    assert out.returncode == 0 and "removed" in out.stdout and not done.exists()
    out = run_cli("rm", queued.name, "--force")
    assert out.returncode == 0 and not queued.exists()
    missing = run_cli("rm", "nope")
    assert missing.returncode == 2 and "qshpc list" in missing.stderr


def test_rm_refuses_folders_outside_the_store(qshpc_home: Path, tmp_path: Path) -> None:
    from qshpc.store import create_job

    mine = tmp_path / "my-results"
    create_job(mine, {"id": "x", "created": 1.0}, {})
    out = run_cli("rm", str(mine), "--force")
    assert out.returncode == 2 and "not under the store" in out.stderr and mine.is_dir()


def test_gc(qshpc_home: Path) -> None:
    now = time.time()
    ok = fake_job("20260101-000000-ok0000", now)
    bad = fake_job("20260101-000000-fail00", now, "FAILED")
    queued = fake_job("20260101-000000-queued", now - 90 * DAY, state=None)
    entries, active, unreadable = collect(30 * DAY, None, now=now + 40 * DAY)
    assert {e.job.job_dir.name for e in entries} == {ok.name, bad.name}
    assert (active, unreadable) == (1, 0)
    entries, _, _ = collect(30 * DAY, "FAILED", now=now + 40 * DAY)
    assert [e.job.job_dir.name for e in entries] == [bad.name]
    assert collect(30 * DAY, None, now=now)[0] == []

    dry = run_cli("gc", "--older-than", "0s", "--state", "failed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {bad.name}" in dry.stdout and "without --dry-run" in dry.stdout
    assert bad.is_dir()
    out = run_cli("gc", "--older-than", "0s")
    assert out.returncode == 0 and "removed 2 job(s)" in out.stdout and "kept 1" in out.stdout
    assert not ok.exists() and not bad.exists() and queued.is_dir()
    for args, text in (
        (["--older-than", "30"], "e.g. 30m"),
        (["--older-than", "1d", "--state", "RUNNING"], "qshpc rm JOB --force"),
        (["--older-than", "1d", "--state", "DONE"], "use one of QUEUED"),
    ):
        out = run_cli("gc", *args)
        assert out.returncode == 2 and text in out.stderr, out.stderr


# --- real jobs: wait / status --watch progress, plot ------------------------------------


@pytest.mark.mpi
def test_watch_plain_lines_while_running(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    job = LocalClient(workers=2).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(tmp_path))
    )
    buf = io.StringIO()
    state = watch(job, timeout=120, stream=buf, interval=0.1, plain_every=0.3)
    lines = buf.getvalue().splitlines()
    assert state == "SUCCEEDED"
    assert len(lines) >= 2 and all(ln.startswith(f"[{job.job_id}] ") for ln in lines)
    assert "SUCCEEDED | 12 tasks done" in lines[-1]
    assert any("RUNNING" in ln for ln in lines), lines

    rich_out = io.StringIO()  # the terminal display renders too (to a non-terminal stream here)
    assert watch(open_job(job.job_id), stream=rich_out, tty=True) == "SUCCEEDED"
    assert "12 tasks done" in rich_out.getvalue()

    plot = run_cli("plot", job.job_id)
    assert plot.returncode == 0, plot.stderr
    png = Path(plot.stdout.strip())
    assert png == job.job_dir / "plot.png" and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.mpi
def test_cli_wait_and_status_watch(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    job = LocalClient(workers=2).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(tmp_path)), arguments={"n": 4}
    )
    out = run_cli("wait", job.job_id, "--timeout", "120")
    assert out.returncode == 0 and out.stdout.strip() == "SUCCEEDED"
    assert f"[{job.job_id}] SUCCEEDED | 4 tasks done" in out.stderr
    quiet = run_cli("wait", job.job_id, "-q")
    assert quiet.stdout.strip() == "SUCCEEDED" and quiet.stderr == ""
    watched = run_cli("status", job.job_id, "--watch")
    assert watched.returncode == 0
    first, second = watched.stdout.splitlines()[:2]
    assert first.startswith(f"[{job.job_id}] SUCCEEDED") and second == "SUCCEEDED"


@pytest.mark.mpi
def test_wait_timeout_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    job = LocalClient(workers=1).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(tmp_path)), arguments={"n": 40}
    )
    try:
        out = run_cli("wait", job.job_id, "--timeout", "0.5")
        assert out.returncode == 3 and f"qshpc wait {job.job_id}" in out.stderr
    finally:
        job.stop()
        job.wait(60)
