"""Reliability hunt of session 13 (hunt13c): full disks, damaged files, neighbours.

- A file system out of inodes (bytes to spare): on 28d9727 a run whose rank 0
  could not create ``logs/dispatch.log`` died with an ``OSError`` traceback (the
  job FAILED as 'rank 0 died'), and one that could not take its lock, open its
  log or its store for writing left the job QUEUED for good (``qshpc rm``
  refused it), its error saying "resume the job". Now the dispatch log is
  optional (one warning), and a job this run created that ran nothing is
  recorded FAILED, or removed when not even that file fits.
- A ``--resume`` of a killed job on a full disk: an ``OSError`` traceback from
  breaking the stale lock; now one line, and the job's state left alone.
- Damaged ``logs/dispatch.log`` (non-UTF-8 bytes: a traceback; a huge range: 6.5 GB
  and the OOM killer) and ``slurm_job_id`` (non-UTF-8: every command a traceback).
- A team's store (``chmod 2770``): job folders lost the set-group-id bit, so other
  members could not read the jobs.
- A damaged record of an uploaded program: ``client.run(title)`` raised
  JSONDecodeError, AttributeError or TypeError; now a UserError naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli, tmpfs
from tests.faults.test_bad_input import no_internals

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]

SQUARES = """\
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    return i * i


save_result(get([f(i) for i in range(6)]))
"""


@pytest.mark.parametrize(("workers", "inodes"), [(0, (8, 10)), (1, (11, 12))])
def test_a_file_system_out_of_inodes_leaves_no_queued_job(
    tmp_path: Path, workers: int, inodes: tuple[int, ...]
) -> None:
    program = tmp_path / "squares.py"
    program.write_text(SQUARES)
    for n in inodes:  # runs out at: the log, job.h5's rewrite / job.h5's, dispatch.log
        with tmpfs(tmp_path / "disk", f"size=20m,nr_inodes={n}") as disk:
            home = disk / "home"
            env = {"QSHPC_HOME": str(home)}
            out = run_cli("run", str(program), "--workers", str(workers), env=env, timeout=60)
            text = out.stdout + out.stderr
            assert "Traceback" not in text, (n, text)
            no_internals(text)
            assert out.returncode in (0, 2), (n, out.returncode, text)
            jobs = sorted((home / "jobs").iterdir()) if (home / "jobs").is_dir() else []
            for job in jobs:
                st = run_cli("status", str(job), "--json", env=env)
                state = json.loads(st.stdout)["state"] if st.returncode == 0 else st.stderr
                assert state in ("SUCCEEDED", "FAILED"), (n, state, text)
            if out.returncode == 0:
                assert len(jobs) == 1
                res = run_cli("result", str(jobs[0]), "--json", env=env)
                assert json.loads(res.stdout) == [i * i for i in range(6)], (n, res.stderr)
            elif not jobs:
                assert "was removed" in text or "creating it" in text, (n, text)
                assert "resume" not in text, (n, text)


DIES = """\
import os, signal
from pathlib import Path
from qshpc import distribute_task, get


@distribute_task()
def f(i):
    return i


get([f(i) for i in range(4)])
(job,) = (Path(os.environ["QSHPC_HOME"]) / "jobs").iterdir()
with open(job / "logs" / "dispatch.log", "ab") as log:  # damaged lines, as a bad disk leaves
    log.write(b"1 0-99999999999\\n1 \\xff\\xfe\\n1 1-2-3\\n1 3-2\\n")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_damaged_dispatch_log_neither_breaks_nor_hangs_the_post_mortem(tmp_path: Path) -> None:
    """On 28d9727 the launcher's post-mortem and ``qshpc status`` of the dead job raised
    UnicodeDecodeError (a traceback) on bytes that are not UTF-8, and a range of 10**11
    ids took 6.5 GB in 30 s (then the OOM killer)."""
    program = tmp_path / "dies.py"
    program.write_text(DIES)
    out = run_cli("run", str(program), "--workers", "1", timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "FAILED" in out.stderr, out.stderr
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    (job / "status.json").unlink(missing_ok=True)  # a reader must do the post-mortem again
    st = run_cli("status", str(job), timeout=30)
    assert st.returncode == 0 and "FAILED" in st.stdout, st.stdout + st.stderr
    assert "Traceback" not in st.stderr, st.stderr


def test_a_slurm_id_file_of_damaged_bytes_leaves_the_job_readable(tmp_path: Path) -> None:
    """On 28d9727 ``slurm_job_id`` holding bytes that are not UTF-8 made ``status``,
    ``result``, ``wait``, ``cancel`` and ``--resume`` a traceback, and ``list`` showed
    the job UNREADABLE: its intact results could not be had."""
    program = tmp_path / "squares.py"
    program.write_text(SQUARES)
    out = run_cli("run", str(program), "--workers", "0")
    assert out.returncode == 0, out.stderr
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    (job / "slurm_job_id").write_bytes(b"\xff\x00abc\n")
    for args in (["status", job.name], ["result", job.name, "--json"], ["list"]):
        got = run_cli(*args)
        assert got.returncode == 0 and "Traceback" not in got.stderr, (args, got.stderr)
        assert "UNREADABLE" not in got.stdout, got.stdout
    assert json.loads(run_cli("result", job.name, "--json").stdout) == [i * i for i in range(6)]
    resumed = run_cli("run", str(program), "--resume", job.name, "--workers", "0")
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr, resumed.stderr
    assert "already SUCCEEDED: nothing to resume" in resumed.stderr  # (fix35a)


def test_a_resume_refused_for_a_full_disk_leaves_the_jobs_state_alone(tmp_path: Path) -> None:
    """A ``--resume`` that cannot take the job's lock on a full disk must not record the
    job FAILED with its own error: another run may hold it, or it ended with its own."""
    with tmpfs(tmp_path / "disk", "size=20m,nr_inodes=64") as disk:
        home = disk / "home"
        env = {"QSHPC_HOME": str(home)}
        program = tmp_path / "dies.py"
        program.write_text(DIES)
        out = run_cli("run", str(program), "--workers", "1", env=env, timeout=90)
        assert out.returncode == 1, out.stderr
        (job,) = (home / "jobs").iterdir()
        before = json.loads(run_cli("status", job.name, "--json", env=env).stdout)
        fillers = disk / "fillers"
        fillers.mkdir()
        try:  # use every inode but one: the lock's claim file fits, not the rest of the lock
            for i in range(100):
                (fillers / str(i)).touch()
        except OSError:
            (fillers / "0").unlink()
        resumed = run_cli("run", str(program), "--resume", job.name, "--workers", "0", env=env)
        assert resumed.returncode == 2 and "No space left" in resumed.stderr, resumed.stderr
        after = json.loads(run_cli("status", job.name, "--json", env=env).stdout)
        assert (after["state"], after["error"]) == (before["state"], before["error"])


def test_a_teams_store_gives_each_job_the_teams_group(tmp_path: Path) -> None:
    """A team's store set up as docs/store.md says (``chmod 2770``, the team's group,
    ``QSHPC_SHARE_GROUP=1``): on 28d9727 each job folder was chmod-ed to 0750, which
    cleared the set-group-id bit it inherited, so ``job.h5`` and the logs took their
    writer's own group and no other member could read the job (``qshpc list`` showed
    it UNREADABLE to them: 'Permission denied')."""
    if os.geteuid() != 0:
        pytest.skip("giving a folder another group needs root")
    team_gid = 4242  # a group the writer is not in by default: only the bit can give it
    home = tmp_path / "team"
    (home / "jobs").mkdir(parents=True)
    for d in (home, home / "jobs"):
        os.chown(d, -1, team_gid)
        os.chmod(d, 0o3770)
    program = tmp_path / "squares.py"
    program.write_text(SQUARES)
    env = {"QSHPC_HOME": str(home), "QSHPC_SHARE_GROUP": "1"}
    out = run_cli("run", str(program), "--workers", "0", env=env)
    assert out.returncode == 0, out.stderr
    (job,) = (home / "jobs").iterdir()
    assert os.stat(job).st_mode & 0o7777 == 0o2750
    for path in (job / "job.h5", job / "logs", job / "logs" / "rank-0.out"):
        st = os.stat(path)
        assert st.st_gid == team_gid and st.st_mode & 0o040, (path, st.st_gid, oct(st.st_mode))


@pytest.mark.parametrize("damage", [b'{"title": "sq", "entry', b"[1, 2]", b'{"x": 5}', b"\xff"])
def test_a_damaged_upload_record_is_one_error_naming_it(
    tmp_path: Path, qshpc_home: Path, damage: bytes
) -> None:
    """On 28d9727 ``client.run(title)`` of an uploaded program whose record was damaged
    raised JSONDecodeError, AttributeError or TypeError (a traceback in a notebook)."""
    from qshpc import LocalClient, Program
    from qshpc.errors import UserError

    (tmp_path / "squares.py").write_text(SQUARES)
    client = LocalClient()
    program = Program(title="sq", entrypoint="squares.py", working_dir=str(tmp_path))
    client.upload(program)
    (record,) = qshpc_home.glob("*/*.json")
    record.write_bytes(damage)
    with pytest.raises(UserError, match="upload the program again") as err:
        client.run("sq")
    assert str(record) in str(err.value)
    assert client.get_programs() == []
    client.upload(program)  # the fix the error names
    assert [p.title for p in client.get_programs()] == ["sq"]
