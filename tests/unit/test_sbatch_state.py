"""Slurm states mapped onto qshpc's, with sacct faked (the real cluster: tests/slurm/test_submit.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from qshpc.client import Job
from qshpc.store import create_job
from qshpc.submit import state as st
from qshpc.submit.state import SlurmView, parse_sacct, parse_scontrol, reconcile_slurm


def test_parse_sacct() -> None:
    text = "12|CANCELLED by 0|0:15|None\n"
    v = parse_sacct(text, "12")
    assert v == SlurmView("CANCELLED", "0:15", "None", "sacct") and v.state == "CANCELED"
    assert parse_sacct("13|TIMEOUT|0:0|TimeLimit\n", "13").state == "FAILED"  # type: ignore[union-attr]
    assert parse_sacct("14|PENDING|0:0|Priority\n", "14").state == "QUEUED"  # type: ignore[union-attr]
    assert parse_sacct("", "12") is None
    assert parse_sacct("120|RUNNING|0:0|None\n", "12") is None  # another job


def test_parse_scontrol() -> None:
    text = "JobId=7 JobName=x\n   JobState=OUT_OF_MEMORY Reason=OutOfMemory Dependency=(null)\n ExitCode=0:125"
    v = parse_scontrol(text)
    assert v is not None and (v.raw, v.reason, v.exit_code) == (
        "OUT_OF_MEMORY",
        "OutOfMemory",
        "0:125",
    )
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None


def test_every_state_maps_to_a_seed_state() -> None:
    assert set(st.SLURM_STATES.values()) <= {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"}
    # unknown: never "ended", never COMPLETED, and (issue 13) never RUNNING either
    assert SlurmView("SOMETHING_NEW").state == "UNKNOWN" and not SlurmView("SOMETHING_NEW").ended


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    create_job(d, {"id": "j1", "created": time.time()}, {})
    (d / "slurm_job_id").write_text("42\n")
    return d


class FakeSlurm:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.view: SlurmView | None = None
        self.calls = 0
        monkeypatch.setattr(st, "query", self)

    def __call__(self, slurm_id: str) -> SlurmView | None:
        assert slurm_id == "42"
        self.calls += 1
        return self.view


def test_queued_and_running_follow_slurm(job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSlurm(monkeypatch)
    fake.view = SlurmView("PENDING", reason="Resources")
    m = Job(job_dir).info()
    assert (m["state"], m["slurm_state"], m["slurm_job_id"]) == ("QUEUED", "PENDING", "42")
    fake.view = SlurmView("RUNNING")
    assert Job(job_dir).status_text() == "RUNNING (slurm: RUNNING)"
    fake.view = None  # Slurm unreachable: keep the store's state
    m = Job(job_dir).info()
    assert (m["state"], m["slurm_state"]) == ("QUEUED", "UNKNOWN")


def test_killed_before_finalize_is_persisted(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSlurm(monkeypatch)
    fake.view = SlurmView("NODE_FAIL", "0:0")
    m = Job(job_dir).info()
    assert m["state"] == "FAILED" and m["slurm_state"] == "NODE_FAIL"
    assert "node of the job failed" in m["error"]
    calls = fake.calls
    fake.view = None  # Slurm forgot the job: the state stays, without asking again
    m = Job(job_dir).info()
    assert (m["state"], m["slurm_state"]) == ("FAILED", "NODE_FAIL")
    assert "node of the job failed" in m["error"] and fake.calls == calls


@pytest.mark.parametrize(
    ("raw", "state", "text"),
    [
        ("COMPLETED", "FAILED", "before the program finished"),
        ("FAILED", "FAILED", "exit code 1:0"),
        ("CANCELLED", "CANCELED", "cancelled"),
        ("OUT_OF_MEMORY", "FAILED", "--mem-gb"),
    ],
)
def test_ended_without_store(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch, raw: str, state: str, text: str
) -> None:
    FakeSlurm(monkeypatch).view = SlurmView(raw, "1:0")
    m = Job(job_dir).info()
    assert m["state"] == state and text in m["error"] and m["slurm_state"] == raw


def test_signal_states_explain_a_terminal_store(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store CANCELED (rank 0 caught the time limit's SIGTERM) + Slurm TIMEOUT -> FAILED, TIMEOUT."""
    fake = FakeSlurm(monkeypatch)
    fake.view = SlurmView("COMPLETING")
    meta: dict[str, Any] = {
        "state": "CANCELED",
        "error": "job cancelled: received SIGTERM",
        "slurm_job_id": "42",
    }
    reconcile_slurm(job_dir, meta)
    assert meta["state"] == "CANCELED" and meta["slurm_state"] == "COMPLETING"
    fake.view = SlurmView("TIMEOUT", "0:0")
    reconcile_slurm(job_dir, meta)
    assert meta["state"] == "FAILED" and meta["slurm_state"] == "TIMEOUT"
    assert meta["error"].startswith("Slurm ended the job TIMEOUT") and "SIGTERM" in meta["error"]
    fake.view = None
    again: dict[str, Any] = {"state": "CANCELED", "error": "x", "slurm_job_id": "42"}
    reconcile_slurm(job_dir, again)  # from the cache
    assert (again["state"], again["slurm_state"]) == ("FAILED", "TIMEOUT")
    assert again["error"].count("Slurm ended") == 1


def test_cancelled_store_stays_canceled(job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSlurm(monkeypatch).view = SlurmView("CANCELLED")
    meta: dict[str, Any] = {"state": "CANCELED", "error": "job cancelled", "slurm_job_id": "42"}
    reconcile_slurm(job_dir, meta)
    assert (meta["state"], meta["slurm_state"]) == ("CANCELED", "CANCELLED")


def test_forgotten_old_terminal_job_is_not_asked_forever(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSlurm(monkeypatch)
    meta: dict[str, Any] = {"state": "FAILED", "slurm_job_id": "42", "finished": time.time() - 3600}
    reconcile_slurm(job_dir, meta)
    reconcile_slurm(job_dir, dict(meta))
    assert fake.calls == 1 and meta["slurm_state"] == "UNKNOWN"


def test_query_falls_back_to_squeue_then_scontrol(monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.submit import slurm

    answers = {"sacct": None, "squeue": "5|RUNNING|None\n", "scontrol": None}
    monkeypatch.setattr(slurm, "_output", lambda args, timeout=0: answers[args[0]])
    assert st.query("5") == SlurmView("RUNNING", "", "None", "squeue")
    answers["squeue"] = ""
    answers["scontrol"] = "JobId=5 JobState=COMPLETED Reason=None ExitCode=0:0"
    assert st.query("5") == SlurmView("COMPLETED", "0:0", "None", "scontrol")
    answers["scontrol"] = None
    assert st.query("5") is None


def test_unanswered_query_without_finish_time_asks_again(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSlurm(monkeypatch)
    meta: dict[str, Any] = {"state": "CANCELED", "slurm_job_id": "42"}  # no "finished" known
    reconcile_slurm(job_dir, meta)
    fake.view = SlurmView("TIMEOUT")
    reconcile_slurm(job_dir, meta)
    assert fake.calls == 2 and (meta["state"], meta["slurm_state"]) == ("FAILED", "TIMEOUT")


def test_wait_gives_rank_0_time_to_finish_writing_after_slurm_ended_the_job(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review26 2b: on Slurm, ``job.stop(); job.wait()`` returned CANCELED from Slurm's
    CANCELLED while rank 0 still drained and wrote: counts and error changed after."""
    import subprocess
    import sys

    FakeSlurm(monkeypatch).view = SlurmView("CANCELLED", "0:15")
    rank0 = (  # a rank 0 that drains 1 s after Slurm says CANCELLED, then writes its end
        "import sys, time; from pathlib import Path; from qshpc.store import JobWriter\n"
        "w = JobWriter.open(sys.argv[1], {'mpi_size': 1, 'ranks': [], 'started': time.time()})\n"
        "w.commit(); Path(sys.argv[2]).touch(); time.sleep(1.0)\n"
        "w.finalize('CANCELED', 'job cancelled: rank 0'); w.close()\n"
    )
    ready = job_dir.parent / "ready"
    proc = subprocess.Popen([sys.executable, "-c", rank0, str(job_dir), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        job = Job(job_dir)
        t0 = time.monotonic()
        assert job.wait(timeout=30) == "CANCELED"
        assert 0.8 < time.monotonic() - t0 < 8
        assert job.info()["error"] == "job cancelled: rank 0"  # rank 0's, not Slurm's
    finally:
        proc.kill()
        proc.wait()


def test_squeue_wins_over_a_lagging_sacct(monkeypatch: pytest.MonkeyPatch) -> None:
    """review32 F8: sacct (slurmdbd) lags the controller by up to ~1 s: its stale PENDING row
    made a job squeue called RUNNING go back to QUEUED. squeue's live answer wins."""
    from qshpc.submit import slurm

    answers: dict[str, str | None] = {
        "sacct": "5|PENDING|0:0|None\n",
        "squeue": "5|RUNNING|None\n",
        "scontrol": None,
    }
    asked: list[list[str]] = []

    def output(args: list[str], timeout: float = 0) -> str | None:
        asked.append(args)
        return answers[args[0]]

    monkeypatch.setattr(slurm, "_output", output)
    assert st.query("5") == SlurmView("RUNNING", "", "None", "squeue")
    answers["squeue"] = None  # squeue not answering: sacct's word
    assert st.query("5") == SlurmView("PENDING", "0:0", "None", "sacct")
    # squeue's brief ended line (no exit code) does not replace sacct's live row
    answers["squeue"] = "5|COMPLETED|None\n"
    assert st.query("5") == SlurmView("PENDING", "0:0", "None", "sacct")
    # a job sacct says ended is not asked of squeue
    answers["sacct"] = "5|COMPLETED|0:0|None\n"
    asked.clear()
    assert st.query("5") == SlurmView("COMPLETED", "0:0", "None", "sacct")
    assert [a[0] for a in asked] == ["sacct"]


def test_a_started_job_never_goes_back_to_queued_on_sacct_alone(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store says rank 0 started (RUNNING); sacct's stale PENDING, with squeue giving
    nothing, keeps RUNNING. squeue's own PENDING (a real requeue) is QUEUED."""
    fake = FakeSlurm(monkeypatch)
    fake.view = SlurmView("PENDING", source="sacct")
    monkeypatch.setattr(st, "query_live", lambda slurm_id: None)
    meta: dict[str, Any] = {"state": "RUNNING", "slurm_job_id": "42"}
    reconcile_slurm(job_dir, meta)
    assert (meta["state"], meta["slurm_state"]) == ("RUNNING", "PENDING")
    monkeypatch.setattr(st, "query_live", lambda slurm_id: SlurmView("PENDING", source="squeue"))
    meta = {"state": "RUNNING", "slurm_job_id": "42"}
    reconcile_slurm(job_dir, meta)
    assert meta["state"] == "QUEUED"
