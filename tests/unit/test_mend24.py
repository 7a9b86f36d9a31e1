"""mend24: session 23's leftovers (counts of ended jobs, messages that name their source)."""

from __future__ import annotations

from pathlib import Path


def test_a_damaged_jobs_counts_claim_no_never_started_calls() -> None:
    """A DAMAGED job's counts are of the results still readable (reader.damaged_meta: FAILED
    0), not of the calls it ran: the rest are not said to have never started."""
    from qshpc.cli.jobs import _counts

    meta = {"state": "DAMAGED", "task_counts": {"SUCCEEDED": 4, "FAILED": 0},
            "tasks_stopped": 0, "tasks_submitted": 12}  # fmt: skip
    assert _counts(meta) == "4 done"
    assert _counts({**meta, "state": "FAILED"}) == "4 done, 8 never started"


def test_staging_still_leaves_out_venvs_nested_or_linked_and_keeps_every_file(
    tmp_path: Path,
) -> None:
    """Only folders are looked at for pyvenv.cfg now (a file was stat'ed for one too): a
    venv in a subfolder, a link to a venv, and a file named like one are as before."""
    from qshpc.submit.staging import stage, staged_size

    src = tmp_path / "work"
    (src / "sub" / "env").mkdir(parents=True)
    (src / "sub" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / "sub" / "data.txt").write_text("abc")
    (src / "pyvenv.cfg.txt").write_text("a file, not a venv")
    (src / "prog.py").write_text("x = 1\n")
    outside = tmp_path / "venv"
    outside.mkdir()
    (outside / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / "linked").symlink_to(outside)
    dest = tmp_path / "staged"
    stage(src, dest)
    staged = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert staged == ["prog.py", "pyvenv.cfg.txt", "sub", "sub/data.txt"]
    assert staged_size(src) == len("x = 1\n") + 3 + len("a file, not a venv")
