"""Damaged job files never hang, crash or fool a reader (issue 17).

``store_fuzz.py`` damages copies of real job files (bit flips, zeroed and
random blocks, truncation; in ``job.h5`` and in a killed writer's journal)
and reads every part back. Each case has a deadline here: a reader that
hangs (HDF5 looped forever on 4 KiB of zeros in its global heap before the
integrity seal) or crashes fails the test naming the case. A part either
reads back exactly as written (or as it was at an earlier commit, for a torn
journal) or is refused with qshpc's StoreError: never a wrong value.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("store_fuzz.py")
CASE_DEADLINE_S = 60.0  # a case reads in well under a second; far above the read time limit


def run_fuzz(work: Path, first: int, count: int, legacy: bool = False) -> list[dict[str, Any]]:
    env = {**os.environ, "QSHPC_READ_TIMEOUT_S": "3"}
    cmd = [sys.executable, str(CHILD), str(work), str(first), str(count)]
    proc = subprocess.Popen(
        [*cmd, *(["legacy"] if legacy else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + CASE_DEADLINE_S * 3  # the first case also builds the jobs
    try:
        while len(lines) < count:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                case = first + len(lines)
                pytest.fail(f"case {case} hung for {CASE_DEADLINE_S} s (no reader may hang)")
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                case = first + len(lines)
                pytest.fail(f"the reader died at case {case} (code {proc.returncode}): "
                            f"{proc.stderr.read()[-3000:]}")  # fmt: skip
            lines.append(json.loads(line))
            deadline = time.monotonic() + CASE_DEADLINE_S
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return lines


def report(lines: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    wrong = [ln for ln in lines if "wrong" in ln]
    assert not wrong, "\n".join(json.dumps(w)[:2500] for w in wrong[:5])
    return Counter((ln["job"], ln["file"], ln["outcome"]) for ln in lines)


@pytest.mark.parametrize("first", [0, 120])
def test_damaged_sealed_jobs(tmp_path: Path, first: int) -> None:
    """240 cases over three jobs (finished small, finished large, killed with a journal)."""
    counts = report(run_fuzz(tmp_path, first, 120))
    outcomes = Counter(k[2] for k in counts.elements())
    # the damage does land: some cases lose everything, some a part, some nothing read
    assert outcomes["refused"] and outcomes["partial"] and outcomes["same"], counts
    assert any(k[1] == "job.journal" for k in counts), counts


def test_damaged_legacy_job_is_bounded(tmp_path: Path) -> None:
    """A file of an older qshpc (no seal) is read in a child under a 3 s limit: no hang, no crash."""
    lines = run_fuzz(tmp_path, 0, 16, legacy=True)
    report(lines)
    assert max(ln["secs"] for ln in lines) < CASE_DEADLINE_S
