"""A resume leaves large stored results in the store until the program takes them (session 27,
fixJ; session 26's closing note: ``--resume`` loaded every stored result into rank 0's memory
before the program ran)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.mpi]

# N results of 1 MiB (under QSHPC_RESULT_MEMORY_MAX: a resume loaded them all); the program
# reports rank 0's peak RSS as it starts (after the resume read the store) and at its end.
PROG = """
import json, os, resource
import numpy as np
from qshpc import distribute_task, get, save_result

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def rss():  # now (a forked rank 0's peak may start at its parent's)
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

START, NOW = peak(), rss()
N = int(os.environ["N"])

@distribute_task()
def t(i):
    print("RAN", i, flush=True)
    return np.full(1 << 17, float(i) + 0.125)

def flip(at=None):
    # change (or change back) a byte inside task K's stored array in job.h5, through no qshpc code
    path = os.path.join(os.environ["JOB"], "job.h5")
    with open(path, "r+b") as fh:
        if at is None:
            at = fh.read().index(np.full(64, float(K) + 0.125).tobytes()) + 100
        fh.seek(at)
        old = fh.read(1)
        fh.seek(at)
        fh.write(bytes([old[0] ^ 0xFF]))
    return at

K = int(os.environ.get("DAMAGE", "-1"))
refs = []
for i in range(N):  # the same calls in the same order in every run (a task's id is its index)
    if i == K:  # damaged after the resume began, just before the call that would reuse it
        at = flip()
        refs.append(t(i))
        get(refs[-1])
        flip(at)
    else:
        refs.append(t(i))
bad = 0
for i, r in enumerate(refs):
    a = get(r)
    bad += not (a.shape == (1 << 17,) and bool((a == i + 0.125).all()))
    del a
HELD = rss()  # the references still held
save_result(bad)
print("REPORT " + json.dumps({"start": NOW, "held": HELD, "peak": peak(), "bad": bad}), flush=True)
if os.environ.get("FAIL_AT_END"):
    raise SystemExit("fail at end")
"""


def _run(job: Path, prog: Path, *args: str, **env: str) -> Any:
    env = {"JOB": str(job), "QSHPC_CHECKPOINT_S": "3600", **env}
    return run_cli("run", str(prog), *args, timeout=300, env=env)


def _report(out: Any) -> dict[str, Any]:
    assert "REPORT " in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    found: dict[str, Any] = json.loads(out.stdout.split("REPORT ", 1)[1].splitlines()[0])
    return found


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_resume_holds_stored_results_in_the_store_not_in_memory(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """48 results of 1 MiB: a resume with ``QSHPC_RESULT_MEMORY_TOTAL=0`` (each read back when
    the program takes it) starts with less on rank 0 than one that loads them (the default),
    and both give back the values, running nothing."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    job = tmp_path / "job"
    n = {"N": "48", "FAIL_AT_END": "1"}
    first = _run(job, prog, "--workers", workers, "--job-dir", str(job), **n)
    assert first.returncode == 1 and _report(first)["bad"] == 0, first.stderr
    lazy = _run(job, prog, "--resume", str(job), QSHPC_RESULT_MEMORY_TOTAL="0", **n)
    loaded = _run(job, prog, "--resume", str(job), **n)
    for out in (lazy, loaded):
        assert out.returncode == 1 and _report(out)["bad"] == 0, out.stderr[-3000:]
        assert "RAN" not in out.stdout and "48 reused from the store" in out.stdout + out.stderr
    a, b = _report(lazy), _report(loaded)
    assert b["start"] - a["start"] > 32, (a, b)  # 48 MiB of results not loaded
    assert b["held"] - a["held"] > 24, (a, b)  # nor held while the program takes them
    # over QSHPC_RESULT_MEMORY_MAX (its 64 KiB minimum here) each is left too, whatever the budget
    small_max = _run(job, prog, "--resume", str(job), QSHPC_RESULT_MEMORY_MAX="65536", **n)
    assert _report(small_max)["bad"] == 0 and "RAN" not in small_max.stdout
    assert b["start"] - _report(small_max)["start"] > 32, (_report(small_max), b)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_stored_result_damaged_before_its_reuse_runs_that_call_again(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """A result left in the store is checked when the program's call would reuse it: a byte
    of task 3's array changed in ``job.h5`` after the resume began -> that call alone runs
    again (a note says why), never a wrong value; the others are reused."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    job = tmp_path / "job"
    first = _run(job, prog, "--workers", workers, "--job-dir", str(job), N="6", FAIL_AT_END="1")
    assert first.returncode == 1, first.stderr
    again = _run(job, prog, "--resume", str(job), N="6", DAMAGE="3", QSHPC_RESULT_MEMORY_TOTAL="0")
    assert again.returncode == 0 and _report(again)["bad"] == 0, again.stderr[-3000:]
    assert again.stdout.count("RAN") == 1 and "RAN 3" in again.stdout, again.stdout
    note = [line for line in again.stderr.splitlines() if "cannot be read back" in line]
    assert len(note) == 1 and "task" in note[0] and "(t)" in note[0], again.stderr
    assert "1 tasks run, 5 reused from the store" in again.stdout + again.stderr


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_first_run_keeps_results_past_the_total_in_the_store(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """48 results of 1 MiB the program keeps references to: with
    ``QSHPC_RESULT_MEMORY_TOTAL=0`` rank 0 holds each only in the store (read back at each
    ``get``), not all 48 in memory; the values are the same."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    outs = []
    for total in ("0", str(256 << 20)):
        job = tmp_path / f"job{total}"
        out = _run(job, prog, "--workers", workers, "--job-dir", str(job), N="48",
                   QSHPC_RESULT_MEMORY_TOTAL=total)  # fmt: skip
        assert out.returncode == 0 and _report(out)["bad"] == 0, out.stderr[-3000:]
        outs.append(_report(out))
    assert outs[1]["held"] - outs[0]["held"] > 24, outs
