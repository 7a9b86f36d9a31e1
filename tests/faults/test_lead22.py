"""Session 22, lead: an array's id given where one job is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, run_cli

pytestmark = pytest.mark.mpi


def test_an_array_id_names_its_elements(qshpc_home: Path) -> None:
    """review26: `qshpc list` prints an array's id, and `qshpc status`/`report` of it said
    only `no job '<id>'` and to run `qshpc list`."""
    from qshpc import LocalClient, Program

    program = Program(title="sq", entrypoint="squares.py", working_dir=str(PROGRAMS))
    jobs = LocalClient(workers=0).map(program, [{"n": 2}, {"n": 3}])
    for job in jobs:
        job.wait(timeout=120)
    array_id = jobs[0].job_id.rsplit("-", 1)[0]
    for command in ("status", "report", "result"):
        out = run_cli(command, array_id)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"{array_id} is a job array, not one job: its 2 elements" in out.stderr
        assert f"qshpc list --array {array_id}" in out.stderr and "Traceback" not in out.stderr


def test_a_programs_own_common_options_reach_it(tmp_path: Path, qshpc_home: Path) -> None:
    """review27: after hunt22d, `--file`, `--time` ("did you mean --title?"), `--name`,
    `--json`, `--dry-run`, `--array`, `--cores`, `--out-dir` were refused (exit 2); on
    e5f893c they reached the program, as they do again. A near-exact typo of a run
    option and a Slurm resource option are still refused."""
    import json

    prog = tmp_path / "argv.py"
    prog.write_text("import sys\nfrom qshpc import save_result\nsave_result(sys.argv[1:])\n")
    words = ["--file", "a", "--time", "3", "--name", "x", "--json", "--dry-run", "--array",
             "--cores", "2", "--out-dir", "o", "--sweep", "4"]  # fmt: skip
    out = run_cli("run", str(prog), *words, "--workers", "0")
    assert out.returncode == 0, out.stderr
    job = sorted((qshpc_home / "jobs").iterdir())[0]
    assert json.loads(run_cli("result", str(job), "--json").stdout) == words
    for typo, meant in (("--titel", "--title"), ("--resum", "--resume"), ("--workrs", "--workers")):
        out = run_cli("run", str(prog), typo, "x")
        assert out.returncode == 2 and f"did you mean {meant}?" in out.stderr, out.stderr
    out = run_cli("run", str(prog), "--partition", "debug")
    assert out.returncode == 2 and "is a qshpc submit option" in out.stderr


def test_map_elements_sort_and_resolve_without_opening_their_stores(qshpc_home: Path) -> None:
    """review27: a map's element folders (`<array id>-<i>`) were sorted and searched by
    reading each one's store (400 elements: `qshpc list` 0.8 -> 3.4 s, a typo'd id 4.7 s),
    and came out in folder-mtime order."""
    from unittest import mock

    from qshpc import LocalClient, Program, list_jobs
    from qshpc.jobs import paths

    program = Program(title="sq", entrypoint="squares.py", working_dir=str(PROGRAMS))
    jobs = LocalClient(workers=0).map(program, [{"n": 1}] * 12)
    for job in jobs:
        job.wait(timeout=120)
    with mock.patch.object(paths, "stored_id", side_effect=AssertionError("a store read")):
        listed = [j.job_id for j in list_jobs()]
        with pytest.raises(paths.JobNotFoundError):
            paths.resolve_job_dir("20200101-000000-abcdef")
    assert listed == [j.job_id for j in reversed(jobs)]  # newest first: 11, 10, ... 0


def test_a_copy_of_a_removed_jobs_folder_is_not_taken_for_it(qshpc_home: Path) -> None:
    """review27: `cp -a jobs/X jobs/X.bak`, `qshpc rm X`, then a second `qshpc rm X`
    removed the copy (found by the id in its store); e5f893c said "no job"."""
    import shutil

    from qshpc import LocalClient, Program

    program = Program(title="sq", entrypoint="squares.py", working_dir=str(PROGRAMS))
    job = LocalClient(workers=0).run(program, arguments={"n": 2})
    job.wait(timeout=120)
    job_id, copy = job.job_id, job.job_dir.with_name(job.job_id + ".bak")
    shutil.copytree(job.job_dir, copy, symlinks=True)
    assert run_cli("rm", job_id).returncode == 0
    again = run_cli("rm", job_id)
    assert again.returncode == 2 and "no job" in again.stderr, again.stderr
    assert (copy / "job.h5").exists()


def test_an_existing_job_dir_of_ones_own_gets_the_stores_mode(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review27: after review23 F3's mend a `--job-dir` folder made by hand under umask 002
    (0775) stayed group-writable (e5f893c made it 0700): a member could swap the stores
    whose task results a resume loads."""
    import os
    import stat

    job_dir = tmp_path / "jd"
    job_dir.mkdir()
    os.chmod(job_dir, 0o775)
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    out = run_cli("run", "--job-dir", str(job_dir), str(prog), "--workers", "0")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700


def test_result_of_a_job_whose_saved_result_is_damaged_lists_what_is_left(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review27: damage in the saved result's own blocks, which the quick state look does
    not see: `qshpc status` listed what is recoverable and what is lost, `qshpc result`
    printed the bare damage line."""
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import numpy as np\nimport qshpc\n"
        "@qshpc.distribute_task()\ndef sq(x):\n    return x * x\n"
        "qshpc.save_result({'vals': qshpc.get([sq(i) for i in range(5)]),"
        " 'arr': np.arange(2000.0)})\n"
    )
    assert run_cli("run", str(prog), "--workers", "0").returncode == 0
    (job,) = (qshpc_home / "jobs").iterdir()
    store = job / "job.h5"
    data = bytearray(store.read_bytes())
    data[len(data) - 6096] ^= 0xFF  # in the saved result's blocks
    store.write_bytes(bytes(data))
    status = run_cli("status", job.name)
    assert "lost: the saved result" in status.stdout + status.stderr
    out = run_cli("result", job.name)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "recoverable: meta, arguments, 5 of 5 task results; lost: the saved result" in (
        out.stderr
    ), out.stderr
