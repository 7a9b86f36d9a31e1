"""Session 22's hunt22e (review24 F3, F5): a job found by its id wherever its folder is.

Each test failed on e5f893c (/tmp/baseMain; what it did there is said in the test); see
docs/bad-input.md, "Session 22, hunt22e".
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import run_cli

FAILS = 'raise RuntimeError("boom")\n'
SQUARES = (
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\n"
    "def sq(i):\n"
    "    return i * i\n"
    "save_result({'squares': get([sq(i) for i in range(4)])})\n"
)


def _hinted(text: str, command: str) -> str:
    """The JOB of the first `` `qshpc COMMAND JOB` `` hint in ``text``."""
    at = text.index(f"`qshpc {command} ") + len(f"`qshpc {command} ")
    return text[at:].split("`")[0].split(" ")[0]


def _run_failing(tmp_path: Path, job_dir: Path) -> str:
    prog = tmp_path / "fails.py"
    prog.write_text(FAILS)
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(job_dir))
    assert out.returncode == 1, out.stderr[-2000:]
    return out.stdout + out.stderr


def test_a_job_dir_run_names_its_folder_in_its_last_line(tmp_path: Path) -> None:
    # On e5f893c: ``qshpc status 20261205-...` shows the error``, and that command said
    # "no job '20261205-...': not a job directory and not a job id", exit 2.
    job_dir = tmp_path / "mine"
    said = _run_failing(tmp_path, job_dir)
    assert f"`qshpc status {job_dir}` shows the error" in said, said[-800:]
    out = run_cli("status", _hinted(said, "status"))
    assert "no job" not in out.stderr and "FAILED" in out.stdout, out


def test_a_folder_in_the_store_named_otherwise_is_found_by_its_id_too(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # The documented own-sbatch folder ``$QSHPC_HOME/jobs/slurm-$SLURM_JOB_ID``: on e5f893c
    # the hint named the id, and `qshpc status ID` (the ID column of `qshpc list`) said
    # "no job".
    job_dir = qshpc_home / "jobs" / "slurm-77"
    said = _run_failing(tmp_path, job_dir)
    assert "`qshpc status slurm-77` shows the error" in said, said[-800:]
    listed = run_cli("list", "--json")
    import json

    (job_id,) = [j["id"] for j in json.loads(listed.stdout)]
    out = run_cli("status", job_id)
    assert out.returncode == 0 and f"dir      {job_dir}" in out.stdout, out
    # its id beside it: sorted and found without opening its store
    assert (job_dir / "job_id").read_text() == f"{job_id}\n"


def test_wait_and_result_of_a_queued_job_dir_name_its_folder(tmp_path: Path) -> None:
    # On e5f893c: "keep waiting with `qshpc wait ID`" and "Wait with `qshpc wait ID`",
    # ids that no command resolves.
    from qshpc.store import create_job

    job_dir = tmp_path / "queued job"
    create_job(job_dir, {"id": "20261205-070000-00000a", "created": time.time()}, {})
    waited = run_cli("wait", str(job_dir), "--timeout", "0.2")
    assert waited.returncode != 0
    assert f"keep waiting with `qshpc wait '{job_dir}'`" in waited.stderr, waited.stderr
    got = run_cli("result", str(job_dir))
    assert got.returncode == 2
    assert f"Wait with `qshpc wait '{job_dir}'`" in got.stderr, got.stderr


def test_the_post_mortem_resume_command_names_the_folder(tmp_path: Path) -> None:
    # On e5f893c: "then `qshpc run seg.py --resume 20261205-...` runs only the unfinished
    # tasks": "no job".
    from qshpc.jobs.postmortem import _what_to_do

    meta = {"id": "20261205-070000-00000b", "entrypoint": "seg.py"}
    said = _what_to_do(meta, tmp_path / "segd", {1}, {1: 139})
    assert f"`qshpc run seg.py --resume {tmp_path / 'segd'}` runs only" in said, said


def _stored(job_dir: Path, job_id: str) -> None:
    from qshpc.store import create_job

    create_job(job_dir, {"id": job_id, "title": job_dir.name, "created": time.time()}, {})


def test_newest_first_is_by_creation_not_by_folder_name(qshpc_home: Path) -> None:
    # On e5f893c `LocalClient().jobs()[0]` (docs/running-locally.md's way back to one's
    # job) and `qshpc list --limit 1` gave the slurm-* folder, made a year before.
    from qshpc.client.job import list_jobs

    jobs = qshpc_home / "jobs"
    _stored(jobs / "slurm-1505", "20251205-061940-436375")
    _stored(jobs / "20261205-070000-00000c", "20261205-070000-00000c")
    _stored(jobs / "slurm-1506", "20261205-080000-000001")
    assert [j.job_dir.name for j in list_jobs()] == [
        "slurm-1506",
        "20261205-070000-00000c",
        "slurm-1505",
    ]
    out = run_cli("list", "--limit", "1")
    assert "20261205-080000-000001" in out.stdout, out


def test_every_slurm_id_a_job_had_finds_it(
    qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On e5f893c, after `qshpc submit --resume J` made Slurm job 1519, `qshpc status 1518`
    # (the id `qshpc submit` printed first) said "no job '1518'".
    from qshpc.jobs.paths import resolve_job_dir
    from qshpc.submit import submission

    job_dir = qshpc_home / "jobs" / "20261205-070000-00000d"
    _stored(job_dir, job_dir.name)
    monkeypatch.setattr(submission, "_record_cluster", lambda d: None)
    monkeypatch.setattr(submission, "render", lambda params, folder: "")
    for sid in ("1518", "1519"):
        submission._submitted(job_dir.name, SimpleNamespace(job_id=sid), job_dir, {})
    assert resolve_job_dir("1519") == job_dir
    assert resolve_job_dir("1518") == job_dir


def test_a_run_under_slurm_records_its_slurm_id(qshpc_home: Path) -> None:
    # One's own sbatch script (`srun qshpc run ... --job-dir $QSHPC_HOME/jobs/slurm-$ID`):
    # on e5f893c no Slurm id was kept, `qshpc status 1505` said "no job '1505'", and the
    # SLURM column of `qshpc list` was "-".
    from qshpc.jobs import prepare
    from qshpc.jobs.paths import resolve_job_dir

    job_dir = qshpc_home / "jobs" / "slurm-1505"
    _stored(job_dir, "20261205-070000-00000e")
    prepare._note_slurm_ids(job_dir, {"SLURM_JOB_ID": "1505"})
    assert resolve_job_dir("1505") == job_dir
    out = run_cli("list")
    assert " 1505 " in out.stdout, out.stdout
    assert not (job_dir / "slurm_job_id").exists()  # Slurm's state is not asked for it


def _damaged_copy(tmp_path: Path) -> Path:
    prog = tmp_path / "sq.py"
    prog.write_text(SQUARES)
    good = tmp_path / "good"
    out = run_cli("run", str(prog), "--workers", "1", "--job-dir", str(good))
    assert out.returncode == 0, out.stderr[-2000:]
    bad = tmp_path / "dmg"
    shutil.copytree(good, bad)
    path = bad / "job.h5"
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff" * 64)
    return bad


def test_result_of_a_damaged_job_prints_the_intact_saved_result(tmp_path: Path) -> None:
    # On e5f893c `qshpc status` said "recoverable: ..., the saved result" while
    # `qshpc result` printed nothing, exit 2, with another list ("the log of 4 task results").
    bad = _damaged_copy(tmp_path)
    status = run_cli("status", str(bad))
    assert status.returncode == 2 and "the saved result" in status.stdout, status
    listed = next(ln for ln in status.stdout.splitlines() if "recoverable:" in ln).strip()
    got = run_cli("result", str(bad))
    assert got.returncode == 2
    assert got.stdout.strip() == "{'squares': [0, 1, 4, 9]}", got
    assert f"; {listed}; the saved result (intact" in got.stderr, (listed, got.stderr)
    as_json = run_cli("result", str(bad), "--json")
    assert as_json.returncode == 2 and as_json.stdout.strip() == '{"squares": [0, 1, 4, 9]}'


def test_a_pickled_result_of_a_job_dir_names_the_folder_in_one_line(tmp_path: Path) -> None:
    # On e5f893c: two lines, the first the Python API's ("pass allow_pickle=True only if
    # ..."), the second "run `qshpc result ID --allow-pickle`", an id that is "no job".
    prog = tmp_path / "pk.py"
    prog.write_text(
        "from fractions import Fraction\nfrom qshpc import save_result\n"
        "save_result({'f': Fraction(1, 3)})\n"
    )
    job_dir = tmp_path / "pickled"
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(job_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    got = run_cli("result", str(job_dir))
    assert got.returncode == 2
    (line,) = got.stderr.strip().splitlines()
    assert "allow_pickle=True" not in line, line
    assert line.endswith(f"run `qshpc result {job_dir} --allow-pickle`"), line
    assert (
        run_cli("result", str(job_dir), "--allow-pickle").stdout.strip() == "{'f': Fraction(1, 3)}"
    )
