"""Damaged job files: the jobs, the damage, the readers and the oracle of test_store_fuzz.

Run as a child process (``python store_fuzz.py WORKDIR FIRST COUNT``) it damages
copies of the reference jobs in WORKDIR and reads each back, printing one JSON
line per case: ``{"case": i, "kind": ..., "outcome": "same" | "refused" | "prefix"}``,
or ``{"case": i, "wrong": ...}`` when a reader returned a value the intact job
does not hold, or raised something other than qshpc's StoreError. The parent
(test_store_fuzz) gives every case a deadline and kills the child when one
hangs, so a hang or a crash names its case.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from qshpc.errors import NoResultError, StoreError, TaskError
from qshpc.store import JOB_FILE, JobReader, JobWriter, TaskRecord, create_job

RUNTIME = {"mpi_size": 2, "ranks": [{"rank": 0, "host": "h0", "pid": 1}], "started": 1.0}
KINDS = ("flip", "zero", "zero4k", "truncate", "garbage")


def record(i: int, big: bool = False) -> TaskRecord:
    result: Any = {0: i / 7, "s": "é" * (i % 9), "t": (i, str(i))}
    if big:
        result = np.arange(150_000, dtype=np.float64) + i  # 1.2 MB: the large stream
    return TaskRecord(
        task_id=str(i), key=f"{i:064x}", function="mod.f", state="FAILED" if i % 11 == 5 else "SUCCEEDED",
        attempt=1, rank=1 + i % 2, host=f"node-{i % 3}", submitted=1.0 + i, started=2.0 + i,
        finished=3.0 + i, seed=i, result=None if i % 11 == 5 else result,
        error="ValueError: boom" if i % 11 == 5 else None, provenance={"i": i},
    )  # fmt: skip


def make_jobs(root: Path) -> dict[str, Path]:
    """Reference jobs: finished small, finished with a large result, killed with a journal."""
    jobs = {}
    for name, n, big in (("small", 40, False), ("large", 6, True), ("journal", 30, False)):
        job = root / name
        create_job(job, {"id": name, "title": f"t-{name}", "created": 5.0, "seed": 3},
                   {"a": [1, 2], "name": "x" * 50})  # fmt: skip
        w = JobWriter.open(job, RUNTIME)
        for i in range(n):
            w.append_task(record(i, big and i % 2 == 0))
            if i % 7 == 6:
                w.commit()
        w.commit()
        if name == "journal":
            w.set_status("half way")
            w.close()  # as if killed: job.h5 plus a journal of commits
        else:
            w.save_result({"sum": float(n), "big": np.arange(200_000.0) if big else None})
            w.finalize("SUCCEEDED")
        jobs[name] = job
    return jobs


class _Refused:
    def __repr__(self) -> str:
        return "<refused>"


REFUSED: Any = _Refused()


def read_all(job: Path) -> dict[str, Any]:
    """Every part a reader returns for ``job``, each read on its own.

    A part is its value, or :data:`REFUSED` when reading it raised qshpc's
    StoreError (anything else propagates: a crash of the reader). Opening the
    job failing refuses every part.
    """
    parts = ("meta", "arguments", "tasks", "result", "recoverable")
    try:
        r = JobReader.open(job)
    except StoreError:
        return {**{k: REFUSED for k in parts}, "results": {}}
    out: dict[str, Any] = {}
    try:

        def part(name: str, fn: Any) -> Any:
            try:
                out[name] = fn()
            except StoreError:
                out[name] = REFUSED
            return out[name]

        def meta() -> Any:
            m = r.meta()
            keys = ("id", "title", "state", "sub_status", "task_counts", "runs", "has_result")
            return {k: m[k] for k in keys}

        def result() -> Any:
            try:
                return r.result()
            except NoResultError:
                return None

        def task(task_id: str) -> Any:
            try:
                return r.task_result(task_id)
            except TaskError as exc:
                return ("TaskError", str(exc).splitlines()[0])
            except StoreError:
                return REFUSED

        part("meta", meta)
        part("arguments", r.arguments)
        tasks = part("tasks", r.tasks)
        ids = [str(i) for i in range(60)] if tasks is REFUSED else [t["task_id"] for t in tasks]
        out["results"] = {i: task(i) for i in ids}
        if tasks is REFUSED:  # which ids exist is unknown: keep the ones that read
            out["results"] = {i: v for i, v in out["results"].items() if v is not REFUSED}
        part("result", result)
        rec = part("recoverable", r.recoverable)
        out["recoverable"] = rec if rec is REFUSED else rec["summary"]
    finally:
        r.close()
    return out


def same(a: Any, b: Any) -> bool:
    """Deep equality that treats numpy arrays by value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
        )  # fmt: skip
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def damage(path: Path, rng: random.Random, kind: str) -> str:
    """Damage the file at ``path`` in place; return what was done."""
    data = bytearray(path.read_bytes())
    n = len(data)
    if kind == "flip":
        k = rng.randint(1, 8)
        spots = [rng.randrange(n) for _ in range(k)]
        for s in spots:
            data[s] ^= 1 << rng.randrange(8)
        what = f"flip {k} bits at {spots[:3]}"
    elif kind == "zero":
        at, size = rng.randrange(n), rng.randint(1, 512)
        data[at : at + size] = bytes(len(data[at : at + size]))
        what = f"zero {size} bytes at {at}"
    elif kind == "zero4k":
        at = rng.randrange(max(1, n - 4096))
        data[at : at + 4096] = bytes(len(data[at : at + 4096]))
        what = f"zero 4 KiB at {at}"
    elif kind == "garbage":
        at, size = rng.randrange(n), rng.randint(1, 4096)
        data[at : at + size] = rng.randbytes(len(data[at : at + size]))
        what = f"random {size} bytes at {at}"
    else:
        at = rng.randrange(n)
        del data[at:]
        what = f"truncate to {at}"
    path.write_bytes(bytes(data))
    return what


def prefixes(job: Path, scratch: Path) -> list[dict[str, Any]]:
    """What readers return after each whole frame of ``job``'s journal (for torn journals)."""
    from qshpc.store.journal import read_journal

    journal = job / "job.journal"
    _, frames, _ = read_journal(journal)
    out = []
    for jf in frames:
        cut = scratch / "prefix"
        shutil.rmtree(cut, ignore_errors=True)
        shutil.copytree(job, cut)
        os.truncate(cut / "job.journal", jf.large_at + sum(jf.large_lens))
        out.append(read_all(cut))
    cut = scratch / "prefix"
    shutil.rmtree(cut, ignore_errors=True)
    shutil.copytree(job, cut)
    os.truncate(cut / "job.journal", 16)
    out.append(read_all(cut))
    shutil.rmtree(cut)
    return out


def check(got: dict[str, Any], ref: dict[str, Any], allowed: list[dict[str, Any]]) -> str | None:
    """None when every part of ``got`` is refused or equals that part of an allowed state.

    ``allowed``: the reference and the states after each earlier commit (a
    torn journal shows one of those); task results are checked one by one.
    """
    for key in ("meta", "arguments", "tasks", "result"):
        if got[key] is not REFUSED and not any(same(got[key], c[key]) for c in allowed):
            return f"{key}: got {got[key]!r:.600} expected {ref[key]!r:.600}"
    for task_id, value in got["results"].items():
        if value is REFUSED:
            continue
        if not any(task_id in c["results"] and same(value, c["results"][task_id]) for c in allowed):
            return f"task {task_id}: got {value!r:.300}"
    return None


def outcome(got: dict[str, Any], ref: dict[str, Any]) -> str:
    """``same`` (all of it read back), ``partial`` (some parts refused) or ``refused``."""
    keys = ("meta", "arguments", "tasks", "result")
    values = [got[k] for k in keys] + list(got["results"].values())
    if all(v is REFUSED for v in values):
        return "refused"
    if all(same(got[k], ref[k]) for k in (*keys, "results")):
        return "same"
    return "partial"


def run_cases(work: Path, first: int, count: int, legacy: bool) -> None:
    """Damage and read cases ``first`` .. ``first + count - 1`` (see the module docstring).

    ``legacy``: damage the frozen schema-v1 file an older qshpc wrote (no seal),
    which is read in a time-limited child: no hang and no crash, but a flipped
    data byte can read back as a wrong value there (nothing checks it), so only
    the outcome's kind is reported.
    """
    if legacy:
        jobs = {"legacy": work / "legacy"}
    else:
        jobs = {p.name: p for p in sorted((work / "ref").iterdir())}
    refs = {name: read_all(job) for name, job in jobs.items()}
    allowed: dict[str, list[dict[str, Any]]] = {name: [] for name in jobs}
    if "journal" in jobs:
        allowed["journal"] = prefixes(jobs["journal"], work)
    names = sorted(jobs)
    for case in range(first, first + count):
        rng = random.Random(case)
        name = names[case % len(names)]
        target = JOB_FILE if name != "journal" or rng.random() < 0.5 else "job.journal"
        kind = KINDS[rng.randrange(len(KINDS))]
        copy = work / f"case-{case}"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        for f in jobs[name].iterdir():
            if f.is_file():
                shutil.copyfile(f, copy / f.name)
        what = damage(copy / target, rng, kind)
        line: dict[str, Any] = {"case": case, "job": name, "file": target, "damage": what}
        t0 = time.monotonic()
        try:
            got = read_all(copy)
        except BaseException as exc:  # anything but qshpc's StoreError is a crash of the reader
            line["wrong"] = f"raised {type(exc).__name__}: {exc}"[:500]
            line["trace"] = traceback.format_exc()[-1500:]
        else:
            problem = None if legacy else check(got, refs[name], [refs[name], *allowed[name]])
            if problem:
                line["wrong"] = problem[:1500]
            else:
                line["outcome"] = outcome(got, refs[name])
                rec = got["recoverable"]
                line["recoverable"] = rec if isinstance(rec, str) else "(not readable)"
        line["secs"] = round(time.monotonic() - t0, 3)
        shutil.rmtree(copy, ignore_errors=True)
        print(json.dumps(line), flush=True)


def main() -> None:
    work, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    legacy = len(sys.argv) > 4 and sys.argv[4] == "legacy"
    if legacy and not (work / "legacy").is_dir():
        (work / "legacy").mkdir(parents=True)
        shutil.copyfile(
            Path(__file__).parents[1] / "data" / "v1" / JOB_FILE, work / "legacy" / JOB_FILE
        )
    if not legacy and not (work / "ref").is_dir():
        make_jobs(work / "ref")
    run_cases(work, first, count, legacy)


if __name__ == "__main__":
    main()
