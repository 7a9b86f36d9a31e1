"""perf18: calls of circuits looked up in bursts (``Intake._defer``), in real runs.

A cached call whose arguments are circuits (and plain values) is keyed at the call and
looked up with the next ones: when LATER_MAX wait, when the program waits (``get``), or
when the dispatcher thread next turns. What each call returns must not change: a miss
among hits runs, a circuit changed after the call is computed (and cached) as it was at
the call, an entry damaged before its lookup is a miss, and a lookup that fails fails its
own call alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import os
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, get_arguments, save_result, wait

@distribute_task(cache=True)
def ops(circuit, tag):
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write(f"{{tag}}\\n")
    return {{"tag": tag, "ops": dict(sorted(circuit.count_ops().items()))}}

n = int(get_arguments().get("n", 6))
circuits = []
for i in range(n):
    qc = QuantumCircuit(2, name=f"c{{i}}")
    for _ in range(i + 1):
        qc.h(0)
    qc.measure_all()
    circuits.append(qc)
if os.environ.get("FAIL_TAG"):  # a fault the store cannot be made to give: the record fails
    from qshpc.program import session as _s

    real = _s.Session.record_hit

    def record_hit(self, task_id, key, function, hit, submitted, seed):
        if task_id == os.environ["FAIL_TAG"]:
            raise OSError("the record failed (injected)")
        return real(self, task_id, key, function, hit, submitted, seed)

    _s.Session.record_hit = record_hit
if os.environ.get("KBI_TAG"):  # Ctrl-C landing in a lookup of the program thread (once)
    import threading
    from qshpc.program import session as _s

    real_k = _s.Session.record_hit
    fired = []

    def record_hit_k(self, task_id, key, function, hit, submitted, seed):
        main = threading.current_thread() is threading.main_thread()
        if task_id == os.environ["KBI_TAG"] and main and not fired:
            fired.append(1)
            raise KeyboardInterrupt("injected")
        return real_k(self, task_id, key, function, hit, submitted, seed)

    _s.Session.record_hit = record_hit_k
if os.environ.get("ORPHAN_TAG"):  # Ctrl-C after a call was queued, before its return
    from qshpc.runtime import intake as _i

    real_s = _i.Intake.submit

    def submit(self, task, args, kwargs):
        ref = real_s(self, task, args, kwargs)
        if ref.task_id == os.environ["ORPHAN_TAG"]:
            raise KeyboardInterrupt("injected")
        return ref

    _i.Intake.submit = submit
refs = []
orphans = 0
for i, c in enumerate(circuits):
    try:
        refs.append(ops(c, i))
    except KeyboardInterrupt:
        orphans += 1
cancelled = refs[int(os.environ["CANCEL_TAG"])].cancel() if os.environ.get("CANCEL_TAG") else None
first = refs[0].result(timeout=0)["tag"] if os.environ.get("RESULT0") else None
later = QuantumCircuit(1, name="later")
refs.append(ops(later, "later"))  # keyed now: an empty circuit
later.x(0)  # changed after the call, before any lookup
ready = None
if os.environ.get("WAIT0"):  # a look that does not wait sees the hits done
    ready = len(wait(refs, num_returns=len(refs), timeout=0)[0])
if os.environ.get("DAMAGE"):  # every entry damaged after the calls (before their lookups?)
    for root, _, files in os.walk(os.environ["CACHE_DIR"]):
        for name in files:
            with open(os.path.join(root, name), "r+b") as f:
                f.seek(-3, 2)
                f.write(b"bad")
out = []
interrupted = False
for r in refs:
    try:
        try:
            out.append(get(r))
        except KeyboardInterrupt:
            interrupted = True
            out.append(get(r))
    except Exception as exc:
        out.append(f"failed: {{type(exc).__name__}}: {{exc}}")
save_result({{"out": out, "ready": ready, "cancelled": cancelled, "first": first,
              "interrupted": interrupted, "orphans": orphans}})
"""


def _run(folder: Path, n: int, **env: str) -> tuple[dict, list[str], str]:
    prog = folder / "burst.py"
    prog.write_text(PROGRAM.format())
    args = folder / f"args-{n}.json"
    args.write_text(json.dumps({"n": n}))
    log = folder / "runs.log"
    log.unlink(missing_ok=True)
    cache = folder / "cache"
    out = run_cli(
        "run", str(prog), "--arguments", str(args), "--workers", "2", "--cache",
        "--cache-dir", str(cache), env={"RUNS_LOG": str(log), "CACHE_DIR": str(cache), **env},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    result = json.loads(run_cli("result", job, "--json").stdout)
    ran = sorted(log.read_text().splitlines()) if log.exists() else []
    return result, ran, run_cli("status", job).stdout


def _want(n: int) -> list[dict]:
    calls = [{"tag": i, "ops": {"h": i + 1, "measure": 2, "barrier": 1}} for i in range(n)]
    for c in calls:
        c["ops"] = dict(sorted(c["ops"].items()))
    return [*calls, {"tag": "later", "ops": {}}]


def test_a_burst_of_hits_with_misses_among_them(qshpc_home: Path, tmp_path: Path) -> None:
    first, ran, _ = _run(tmp_path, 6)
    assert first["out"] == _want(6) and len(ran) == 7
    # Two new circuits among six hits; the circuit changed after its call hits as it was.
    second, ran, status = _run(tmp_path, 8)
    assert second["out"] == _want(8)
    assert ran == ["6", "7"]
    assert "9 done (7 from cache)" in status


def test_an_entry_damaged_before_its_lookup_is_computed_again(
    qshpc_home: Path, tmp_path: Path
) -> None:
    _run(tmp_path, 4)
    again, ran, status = _run(tmp_path, 4, DAMAGE="1")
    assert again["out"] == _want(4)
    # Each call hit (looked up before the damage: the dispatcher thread's turn came) or
    # ran again (looked up after it: a damaged entry is a miss); none took damaged bytes.
    found = re.search(r"\((\d+) from cache\)", status)
    hits = int(found.group(1)) if found else 0
    assert len(ran) + hits == 5 and "5 done" in status
    # ...and stored again, whole. The entries that hit (looked up before the damage, which
    # a loaded machine makes likely) are still damaged: the next run computes those again
    # (a damaged entry is a miss), and the one after takes every result from the cache.
    third, ran, status = _run(tmp_path, 4)
    assert third["out"] == _want(4) and len(ran) == hits and "5 done" in status
    fourth, ran, status = _run(tmp_path, 4)
    assert fourth["out"] == _want(4) and ran == [] and "5 done (5 from cache)" in status


def test_a_lookup_that_fails_fails_its_own_call_alone(qshpc_home: Path, tmp_path: Path) -> None:
    _run(tmp_path, 4)
    out, ran, _ = _run(tmp_path, 4, FAIL_TAG="2")
    want = _want(4)
    assert out["out"][:2] == want[:2] and out["out"][3:] == want[3:]
    assert "the record failed (injected)" in out["out"][2]
    assert ran == []


def test_many_calls_looked_up_in_batches(qshpc_home: Path, tmp_path: Path) -> None:
    """More calls than one batch (LATER_MAX): every one hits, in order."""
    from qshpc.runtime.intake import LATER_MAX

    n = LATER_MAX * 2 + 5
    first, _, _ = _run(tmp_path, n)
    again, ran, status = _run(tmp_path, n, WAIT0="1")
    assert again["out"] == first["out"] == _want(n) and ran == []
    assert f"{n + 1} done ({n + 1} from cache)" in status
    assert again["ready"] == n + 1  # wait(timeout=0) right after the calls: all done


def test_a_hit_not_looked_up_yet_is_seen_by_its_own_result_and_can_be_cancelled(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review51 F6: ``ref.result(timeout=0)`` of a hit looks it up (it waited for the
    dispatcher's next turn); F1: a hit the program cancelled before its lookup is neither
    resolved nor recorded as taken from the cache."""
    _run(tmp_path, 4)
    out, ran, status = _run(tmp_path, 4, RESULT0="1", CANCEL_TAG="2")
    want = _want(4)
    assert out["first"] == 0
    assert out["cancelled"] is True
    assert out["out"][2].startswith("failed: CancelledError")
    assert out["out"][:2] == want[:2] and out["out"][3:] == want[3:]
    assert ran == []
    assert "(4 from cache)" in status, status


def test_a_ctrl_c_in_a_lookup_reaches_the_program_and_loses_no_call(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review51 F2: a KeyboardInterrupt raised while the program thread looked calls up was
    made one call's error, and the program went on as if nothing happened."""
    _run(tmp_path, 4)
    out, ran, _ = _run(tmp_path, 4, KBI_TAG="1")
    assert out["out"] == _want(4)
    assert out["interrupted"] is True  # (the program's get of call 1 looked it up)
    assert ran == []


def test_a_call_interrupted_after_it_was_queued_counts_as_made(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review51 LOW: a Ctrl-C between a call's queueing and its return (the program never
    gets its reference). The call counts as made, hit or miss: a hit is recorded (taken
    from the cache), a miss runs and is stored, as a call whose reference the program got
    and dropped (the same window goes on into the program's own code, where no library
    can tell the two apart)."""
    first, ran, status = _run(tmp_path, 4, ORPHAN_TAG="2")
    want = _want(4)
    assert first["orphans"] == 1 and first["out"] == [*want[:2], *want[3:]]
    assert "2" in ran and len(ran) == 5 and "5 done" in status  # the miss ran
    again, ran, status = _run(tmp_path, 4, ORPHAN_TAG="2")
    assert again["out"] == first["out"] and ran == []
    assert "5 done (5 from cache)" in status  # the hit was recorded
