"""The result cache: what a key and a lookup cost, against what they replace.

Parts (each prints a table; ratios are taken within the same run):

1. ``keys``: the cost of a key for typical calls (plain values, a 1000-value
   array, a 12-qubit circuit, a parameterized ansatz with its values), beside
   what rank 0 already pays at a call today: pickling the arguments for the
   workers (circuits as QPY).
2. ``store``: one entry written (rename; with and without fsync), a hit read
   and decoded, a miss, on the folder given (default: a temporary folder; pass
   ``--dir`` on the shared file system to measure it there), for N entries.
3. ``program``: the seed program (``examples/program_4.py``, unchanged) on N
   random circuits through ``qshpc run --workers W``: without the cache, with
   it cold (empty folder), and warm (every call a hit), beside an empty
   program's whole command (with no arguments, and with the same arguments
   file). The task phase is read from the job store (first call to last
   result). Targets: warm task phase >= 20x faster than cold; warm whole
   command <= 1.3x the empty program's. With ``--baseline TREE``, the same
   runs from TREE too, alternately with this tree's, each with its own
   cache folder.
4. ``dispatch``: 100k tiny calls (``x + 1``) with the cache off, on and cold
   (every call a miss and a write), on and warm (every call a hit); the extra
   time per call. Target: off unchanged (the switch is one attribute test),
   on < 50 µs a call.

5. ``hit`` (only when asked): one hit of an exact distribution (``--qubits``,
   ``--depth``; default 12 and 12) taken
   apart in rank 0's thread CPU (``--hits`` entries, results kept alive as a
   program keeps them): keyable, the key and its QPY dump, the lookup and its
   parts (read, BLAKE2b check, header, decode, rebuild), SHA-256 and CRC-32 of
   the entry beside the check; and why a circuit from the arguments is still
   dumped for its key (equality misses a register or a label that QPY keeps).

6. ``offab`` (only when asked, with ``--baseline TREE``): the cache off must
   not slow dispatch. ``benchmarks/_dispatch_prog.py`` (100k tiny calls, the
   cache never mentioned) run alternately from this tree and from TREE, a
   checkout without the cache (``git worktree add /tmp/base <commit>``); the
   ratio of the best times.

Run:
    python benchmarks/cache.py                      # every part but offab
    python benchmarks/cache.py offab --baseline /tmp/base --repeat 5
    python benchmarks/cache.py hit --hits 128
    python benchmarks/cache.py store --entries 20000 --dir /scratch/me/cachebench
    python benchmarks/cache.py program --circuits 512 --qubits 12 --depth 12 --workers 2
    python benchmarks/cache.py program --baseline /work/main   # A/B against another tree
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _trees import precompile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_call(fn: Callable[[], Any], n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` mean seconds per call over ``n`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def part_keys() -> None:
    import numpy as np
    from qiskit.circuit.library import real_amplitudes
    from qiskit.circuit.random import random_circuit

    from qshpc.cache.keys import call_key, function_digest
    from qshpc.task.payload import dumps

    def task(*args: Any) -> None: ...

    d = function_digest(task)
    qc = random_circuit(12, 12, seed=1)
    qc.measure_all()
    small = random_circuit(2, 2, seed=1)
    small.measure_all()
    ansatz = real_amplitudes(8, reps=3)
    values = np.linspace(0, 1, ansatz.num_parameters)
    arr = np.arange(1000.0)
    cases = [
        ("3 plain values", (7, 0.5, "x"), 20000),
        ("1000-value array", (arr,), 5000),
        ("2-qubit random circuit (seed notebook)", (small,), 2000),
        ("12-qubit depth-12 circuit", (qc,), 500),
        ("8-qubit ansatz + values (same object each call)", (ansatz, values), 500),
    ]
    print(f"\n## keys ({load()})\n")
    print("| arguments | key µs | key µs, the payload's QPY reused | pickling for a worker µs "
          "| key reused / pickling |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, args, n in cases:
        qpy: dict[int, tuple[Any, bytes]] = {}
        dumps((args, {}), qpy)  # what rank 0 does first for a cached call: the payload
        k = per_call(lambda args=args: call_key(d, args, None, None), n)  # type: ignore[misc]
        r = per_call(lambda args=args, q=qpy: call_key(d, args, None, None, q), n)  # type: ignore[misc]
        p = per_call(lambda args=args: dumps((args, {})), n)  # type: ignore[misc]
        print(f"| {name} | {k * 1e6:.1f} | {r * 1e6:.1f} | {p * 1e6:.1f} | {r / p:.2f}x |")
    t0 = time.perf_counter()
    function_digest(task)
    print(
        f"\nfunction digest (once per function and process): {(time.perf_counter() - t0) * 1e6:.0f} µs"
    )


def part_hit(n: int, qubits: int = 12, depth: int = 12) -> None:
    """What one hit of an exact distribution costs rank 0, part by part (thread CPU)."""
    import hashlib
    import io
    import zlib

    from qiskit import qpy
    from qiskit.circuit.random import random_circuit

    from qshpc.aer import Sampler
    from qshpc.cache import entry as E
    from qshpc.cache.body import restore, store_blob
    from qshpc.cache.keys import call_key, function_digest
    from qshpc.cache.store import CacheDir
    from qshpc.runtime.intake import keyable
    from qshpc.store import _qpy
    from qshpc.store.encoding_blob import decode_blob, encode_blob

    def task(circuit: Any) -> Any:
        return Sampler().run(circuit).result().quasi_dists[0]

    made = []
    for i in range(n):
        c = random_circuit(qubits, depth, seed=1000 + i)
        c.measure_all()
        made.append(c)
    buf = io.BytesIO()
    qpy.dump(made, buf)
    circuits = list(qpy.load(io.BytesIO(buf.getvalue())))  # as the program gets them
    fd = function_digest(task)
    with tempfile.TemporaryDirectory() as tmp:
        cache = CacheDir(tmp)
        keys = [call_key(fd, (c,), None, None, {}) for c in circuits]
        for k, c in zip(keys, circuits, strict=True):
            cache.put_value(k, task(c), "task")
        paths = [cache.path_of(k) for k in keys]
        raw = [p.read_bytes() for p in paths]
        split = [E.unpack(r, k, "x") for r, k in zip(raw, keys, strict=True)]
        plain = [decode_blob(b) for _, b in split]
        rows: list[tuple[str, float, float]] = []

        def phase(name: str, fn: Callable[[int], Any]) -> None:
            runs = []
            for _ in range(5):
                kept = []  # what a hit returns stays alive, as the program keeps it
                t0 = time.thread_time()
                for i in range(n):
                    kept.append(fn(i))
                runs.append((time.thread_time() - t0) / n)
                del kept  # the next round may reuse this memory: the first one may not
            rows.append((name, runs[0], min(runs)))

        phase("keyable (the arguments hold no reference)", lambda i: keyable((circuits[i],)))
        phase(
            "key (QPY dump of the circuit, hashed)",
            lambda i: call_key(fd, (circuits[i],), None, None, {}),
        )
        phase("  of it: the QPY dump", lambda i: _qpy.dump(circuits[i]))
        phase("lookup, whole (CacheDir.get)", lambda i: cache.get(keys[i], freshen=False))
        phase(
            "lookup, lazy (get(lazy=True): checked, the record's bytes, not decoded)",
            lambda i: cache.get(keys[i], freshen=False, lazy=True),
        )
        phase(
            "  then decoded at the program's read (Hit.load)",
            lambda i: cache.get(keys[i], freshen=False, lazy=True).load(),  # type: ignore[union-attr]
        )
        phase(
            "  the record's bytes from a typed body (store_blob)",
            lambda i: store_blob(split[i][1], split[i][0].type or {}),
        )
        phase(
            "  (before: the record encoded again from the value)",
            lambda i: encode_blob(restore(plain[i], split[i][0].type or {})),
        )
        phase("  open, fstat, read, close", lambda i: paths[i].read_bytes())
        phase("  BLAKE2b-128 check", lambda i: E._checksum(memoryview(raw[i])[: -E.CHECK]))
        phase("  lengths, check, header (E.unpack)", lambda i: E.unpack(raw[i], keys[i], "x"))
        phase("  decode the body", lambda i: decode_blob(split[i][1]))
        phase(
            "  rebuild the QuasiDistribution", lambda i: restore(plain[i], split[i][0].type or {})
        )
        phase(
            "  (SHA-256 of the entry instead)",
            lambda i: hashlib.sha256(memoryview(raw[i])[: -E.CHECK]).digest(),
        )
        phase(
            "  (CRC-32 of the entry instead)", lambda i: zlib.crc32(memoryview(raw[i])[: -E.CHECK])
        )
        size = sum(len(r) for r in raw) / n
        values = sum(len(v) for v in plain) / n
    print(f"\n## one hit, part by part: {n} {qubits}-qubit depth-{depth} circuits from QPY, entries of "
          f"{size / 1024:.1f} KB ({values:.0f} values); thread CPU, 5 rounds ({load()})\n")  # fmt: skip
    print("| part | µs per hit, first round (new memory) | best round |")
    print("|---|---|---|")
    for name, first, best in rows:
        print(f"| {name} | {first * 1e6:.1f} | {best * 1e6:.1f} |")
    # Why a circuit from the arguments is still dumped for its key: an equality test against
    # a pristine copy (the only cheap guard that it is unchanged) misses changes QPY keeps.
    from qiskit import QuantumCircuit
    from qiskit.circuit import ClassicalRegister
    from qiskit.circuit.library import HGate

    a = QuantumCircuit(2, 2, name="g")
    a.h(0)
    b = a.copy()
    b.add_register(ClassicalRegister(2, "extra"))
    c = QuantumCircuit(2, 2, name="g")
    c.append(HGate(label="mine"), [0])
    print("\nAn unchanged-circuit guard by equality is not sound: a register added "
          f"-> CircuitData equal: {a._data == b._data}; a gate's label -> CircuitData equal: "
          f"{a._data == c._data}, QuantumCircuit equal: {a == c}; QPY bytes equal: "
          f"{_qpy.dump(a) == _qpy.dump(b)} / {_qpy.dump(a) == _qpy.dump(c)}")  # fmt: skip


def part_store(entries: int, folder: Path | None) -> None:
    import numpy as np

    from qshpc.cache.store import CacheDir
    from qshpc.store.encoding_blob import encode_blob

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        print(f"\n## store: {entries} entries in {tmp} ({load()})\n")
        rows = []
        for label, value in (("int", 12345), ("1 KB dict", {i: i / 7 for i in range(60)}),
                             ("80 KB array", np.arange(10_000.0))):  # fmt: skip
            body = encode_blob(value)
            for fsync in (False, True):
                cache = CacheDir(Path(tmp) / f"{label}-{fsync}", fsync=fsync)
                keys = [
                    os.urandom(32).hex() for _ in range(entries if not fsync else entries // 10)
                ]
                t0 = time.perf_counter()
                for k in keys:
                    cache.put(k, body, "f", "job", "0")
                put = (time.perf_counter() - t0) / len(keys)
                if fsync:
                    rows.append((label, "put + fsync", put))
                    continue
                rows.append((label, "put", put))
                t0 = time.perf_counter()
                for k in keys:
                    assert cache.get(k, freshen=False) is not None
                rows.append((label, "hit", (time.perf_counter() - t0) / len(keys)))
                misses = [os.urandom(32).hex() for _ in range(len(keys))]
                t0 = time.perf_counter()
                for k in misses:
                    assert cache.get(k) is None
                rows.append((label, "miss", (time.perf_counter() - t0) / len(keys)))
        print("| value | operation | µs |")
        print("|---|---|---|")
        for label, op, t in rows:
            print(f"| {label} | {op} | {t * 1e6:.1f} |")


EMPTY = "from qshpc import save_result\nsave_result(None)\n"
EMPTY_ARGS = "from qshpc import get_arguments, save_result\nsave_result(len(get_arguments()))\n"


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds ``cmd`` took. ``cwd``: the tree whose qshpc runs (``python -m`` puts the
    current folder first on sys.path, before PYTHONPATH: run from another tree's root,
    the "baseline" ran that tree's code; so did this benchmark's until session 14)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t0


def _task_phase(job: Path) -> tuple[float, int, int]:
    """(first call to last result, tasks, tasks from the cache) from the job store."""
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        tasks = r.tasks()
    first = min(float(t["submitted"]) for t in tasks)
    last = max(float(t["finished"]) for t in tasks)
    cached = sum(1 for t in tasks if (t.get("provenance") or {}).get("cache"))
    return last - first, len(tasks), cached


#: Spans of a whole command, from the ranks' and the launcher's timelines (QSHPC_TIMELINE).
SPANS = (
    ("start-up to MPI", "launcher:start", "rank-0:mpi"),
    ("job prepared (rank 0)", "rank-0:mpi", "rank-0:job prepared"),
    ("arguments read, store open", "rank-0:job prepared", "rank-0:program started"),
    ("program", "rank-0:program started", "rank-0:program ended"),
    ("workers stopped", "rank-0:program ended", "rank-0:workers stopped"),
    ("store final (fold, seal)", "rank-0:workers stopped", "rank-0:store final"),
    ("exit", "rank-0:store final", "launcher:exit code known"),
)


def _breakdown(job: Path) -> dict[str, float]:
    """Wall seconds of each span of :data:`SPANS` (empty when a timeline is missing)."""
    import json

    try:
        tl = {who: json.loads((job / "logs" / f"timeline-{who}.json").read_text())
              for who in ("launcher", "rank-0")}  # fmt: skip
    except (OSError, ValueError):
        return {}
    marks = {who: {m[0]: m[1] for m in d["marks"]} for who, d in tl.items()}
    for who, d in tl.items():
        marks[who]["start"] = d["proc_start"]
    out: dict[str, float] = {}
    for name, start, end in SPANS:
        t0 = marks[start.split(":")[0]].get(start.split(":", 1)[1])
        t1 = marks[end.split(":")[0]].get(end.split(":", 1)[1])
        if t0 is not None and t1 is not None:
            out[name] = t1 - t0
    # Rank 0's process CPU (steadier than wall on a loaded machine): in the program, and in all.
    cpu = {m[0]: float(m[2]) for m in tl["rank-0"]["marks"] if len(m) > 2}
    if "program started" in cpu and "program ended" in cpu:
        out["rank 0 CPU: program"] = cpu["program ended"] - cpu["program started"]
    if tl["rank-0"].get("cpu_s") is not None:
        out["rank 0 CPU: whole"] = float(tl["rank-0"]["cpu_s"])
    # The workers' process CPU (their preload included), and whether they imported qiskit.
    workers = []
    for f in sorted((job / "logs").glob("timeline-rank-*.json")):
        if f.name != "timeline-rank-0.json":
            try:
                workers.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
    if workers:
        out["workers CPU (all)"] = sum(float(w.get("cpu_s") or 0.0) for w in workers)
        out["workers that imported qiskit"] = sum("qiskit" in w.get("modules", ()) for w in workers)
    return out


PROGRAM_RUNS = ("empty", "empty+args", "no cache", "cache cold", "cache warm")


def part_program(
    n: int, qubits: int, depth: int, workers: int, repeat: int, baseline: Path | None = None,
    only: tuple[str, ...] = PROGRAM_RUNS,
) -> None:  # fmt: skip
    from qiskit.circuit.random import random_circuit

    from qshpc.store import save_arguments

    trees = [("", ROOT)] + ([("baseline ", baseline)] if baseline is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        circuits = []
        for i in range(n):
            c = random_circuit(qubits, depth, seed=1000 + i)
            c.measure_all()
            circuits.append(c)
        save_arguments(t / "args.h5", {"circuits": circuits})
        (t / "empty.py").write_text(EMPTY)
        (t / "empty_args.py").write_text(EMPTY_ARGS)
        base = [sys.executable, "-m", "qshpc", "run", "--workers", str(workers)]
        args = ["--arguments", str(t / "args.h5")]
        runs: dict[str, list[tuple[float, float, int]]] = {}
        spans: dict[str, list[dict[str, float]]] = {}

        def job(label: str, tree: Path, cmd: list[str], i: int) -> None:
            jd = t / f"{label}-{i}".replace(" ", "_")
            env = dict(os.environ, QSHPC_HOME=str(t / "home"), PYTHONPATH=str(tree),
                       QSHPC_TIMELINE="1")  # fmt: skip
            wall = _run([*base, *cmd, "--job-dir", str(jd)], env, tree)
            empty = label.endswith(("empty", "empty+args"))
            phase, _, cached = _task_phase(jd) if not empty else (0.0, 0, 0)
            runs.setdefault(label, []).append((wall, phase, cached))
            spans.setdefault(label, []).append(_breakdown(jd))

        for i in range(repeat):  # the trees alternate, run by run
            for tag, tree in trees:
                prog = str(tree / "examples" / "program_4.py")
                folder = t / f"{tag}cache".replace(" ", "_")
                cache = ["--cache", "--cache-dir", str(folder)]
                if "empty" in only:
                    job(f"{tag}empty", tree, [str(t / "empty.py")], i)
                if "empty+args" in only:
                    job(f"{tag}empty+args", tree, [str(t / "empty_args.py"), *args], i)
                if "no cache" in only:
                    job(f"{tag}no cache", tree, [prog, *args], i)
                if "cache cold" in only or i == 0:  # warm runs need it once
                    shutil.rmtree(folder, ignore_errors=True)
                    job(f"{tag}cache cold", tree, [prog, *args, *cache], i)
                if "cache warm" in only:
                    job(f"{tag}cache warm", tree, [prog, *args, *cache], i)
        print(f"\n## the seed program, {n} circuits of {qubits} qubits, depth {depth}, "
              f"{workers} worker(s), best of {repeat} ({load()})\n")  # fmt: skip
        if baseline is not None:
            print(f"this tree: {ROOT}; baseline: {baseline} (run alternately)\n")
        print(
            "| run | whole command s | task phase s | from cache | every run: whole / task phase s |"
        )
        print("|---|---|---|---|---|")
        best = {k: min(v) for k, v in runs.items()}
        for label, (wall, phase, cached) in best.items():
            every = ", ".join(f"{w:.2f} / {p:.3f}" for w, p, _ in runs[label])
            print(f"| {label} | {wall:.2f} | {phase:.3f} | {cached} | {every} |")
        for tag, _ in trees:
            labels = [f"{tag}{r}" for r in ("empty", "empty+args", "cache cold", "cache warm")]
            labels = [label for label in labels if spans.get(label) and spans[label][0]]
            if labels:
                print(f"\n{tag or 'this tree: '}where a whole command's time goes (s, median of "
                      f"{repeat}; QSHPC_TIMELINE marks of rank 0 and the launcher):\n")  # fmt: skip
                print("| span | " + " | ".join(labels) + " |")
                print("|---|" + "---|" * len(labels))
                for name in [n for n, *_ in SPANS] + [
                    "rank 0 CPU: program", "rank 0 CPU: whole", "workers CPU (all)",
                    "workers that imported qiskit",
                ]:  # fmt: skip
                    cells = []
                    for label in labels:
                        xs = sorted(d[name] for d in spans[label] if name in d)
                        cells.append(f"{xs[len(xs) // 2]:.3f}" if xs else "-")
                    print(f"| {name} | " + " | ".join(cells) + " |")
        if set(only) != set(PROGRAM_RUNS):
            print("\n(medians of every run, whole command s: " + "; ".join(
                f"{k} {sorted(w for w, _, _ in v)[len(v) // 2]:.2f}" for k, v in runs.items()
            ) + ")")  # fmt: skip
            return
        for tag, _ in trees:
            cold, warm = best[f"{tag}cache cold"], best[f"{tag}cache warm"]
            empty, empty_args = best[f"{tag}empty"], best[f"{tag}empty+args"]
            print(f"\n{tag or 'this tree: '}task phase cold / warm: "
                  f"{cold[1] / max(warm[1], 1e-9):.1f}x (target >= 20x); "
                  f"a hit {warm[1] / n * 1e3:.2f} ms of task phase")  # fmt: skip
            print(f"{tag or 'this tree: '}warm whole command / empty program: "
                  f"{warm[0] / empty[0]:.2f}x, / empty program with the same arguments: "
                  f"{warm[0] / empty_args[0]:.2f}x (target <= 1.3x)")  # fmt: skip
            print(
                f"{tag or 'this tree: '}cold whole command / no cache: "
                f"{cold[0] / best[f'{tag}no cache'][0]:.2f}x"
            )


DISPATCH = """\
import json, sys, time
from qshpc import distribute_task, get, save_result

mode, n = sys.argv[1], int(sys.argv[2])

@distribute_task(cache=(mode != "off"))
def tiny(x):
    return x + 1

get(tiny(-1))  # warm: workers up, function shipped
t0 = time.perf_counter()
out = get([tiny(i) for i in range(n)])
dt = time.perf_counter() - t0
assert out[-1] == n
save_result({"n": n})
print("BENCH " + json.dumps({"seconds": dt}))
"""


def part_dispatch(n: int, workers: int, repeat: int) -> None:
    import json

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "tiny.py").write_text(DISPATCH)
        env = dict(os.environ, QSHPC_HOME=str(t / "home"), PYTHONPATH=str(ROOT),
                   QSHPC_CACHE_DIR=str(t / "cache"))  # fmt: skip
        times: dict[str, list[float]] = {}
        for i in range(repeat):
            shutil.rmtree(t / "cache", ignore_errors=True)
            for mode in ("off", "cold", "warm"):
                cmd = [sys.executable, "-m", "qshpc", "run", str(t / "tiny.py"), "--workers",
                       str(workers), "--job-dir", str(t / f"{mode}-{i}"), "--", mode, str(n)]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800,
                                     cwd=ROOT)  # fmt: skip
                line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
                if out.returncode or not line:
                    raise RuntimeError(f"{mode} failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")
                times.setdefault(mode, []).append(json.loads(line[0][6:])["seconds"])
        best = {k: min(v) for k, v in times.items()}
        print(
            f"\n## dispatch of {n} tiny calls, {workers} worker(s), best of {repeat} ({load()})\n"
        )
        print("| cache | calls/s | µs per call | extra µs per call vs off |")
        print("|---|---|---|---|")
        for mode, s in best.items():
            extra = (s - best["off"]) / n * 1e6
            print(f"| {mode} | {n / s:,.0f} | {s / n * 1e6:.1f} | {extra:+.1f} |")


def part_offab(baseline: Path, n: int, workers: int, repeat: int) -> None:
    import json

    prog = "benchmarks/_dispatch_prog.py"
    times: dict[str, list[float]] = {"this tree": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for label, tree in (("this tree", ROOT), ("baseline", baseline)):
                env = dict(os.environ, PYTHONPATH=str(tree), QSHPC_HOME=f"{tmp}/home")
                cmd = [sys.executable, "-m", "qshpc", "run", str(tree / prog), "--workers",
                       str(workers), "--job-dir", f"{tmp}/{i}-{label}", "--", str(n)]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800,
                                     cwd=tree)  # fmt: skip
                line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
                if out.returncode or not line:
                    raise RuntimeError(f"{label}: {out.stdout[-1500:]} {out.stderr[-1500:]}")
                times[label].append(json.loads(line[0][6:])["seconds"])
    best = {k: min(v) for k, v in times.items()}
    print(f"\n## cache off vs a tree without the cache: {n} tiny calls, {workers} worker(s), "
          f"best of {repeat}, alternately ({load()})\n")  # fmt: skip
    print("| tree | calls/s (best) | all runs s |")
    print("|---|---|---|")
    for label, s in best.items():
        runs = ", ".join(f"{t:.3f}" for t in times[label])
        print(f"| {label} | {n / s:,.0f} | {runs} |")
    print(f"\nthis tree / baseline time: {best['this tree'] / best['baseline']:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "parts", nargs="*", help="keys, store, program, dispatch (default: all); hit, offab"
    )
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=None, help="Where the store part writes.")
    ap.add_argument("--circuits", type=int, default=512)
    ap.add_argument("--qubits", type=int, default=12)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hits", type=int, default=128, help="hit: circuits (entries) to time")
    ap.add_argument("--runs", default=",".join(PROGRAM_RUNS),
                    help="program: which runs, comma separated (a cold run fills the cache "
                    "once when only warm ones are asked)")  # fmt: skip
    ap.add_argument("--baseline", type=Path, default=None,
                    help="offab: a tree without the cache; program: another tree (e.g. "
                    "a worktree of main) run alternately with this one")  # fmt: skip
    a = ap.parse_args()
    a.parts = a.parts or ["keys", "store", "program", "dispatch"]
    precompile(ROOT, *([a.baseline.resolve()] if a.baseline is not None else []))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    if "keys" in a.parts:
        part_keys()
    if "store" in a.parts:
        part_store(a.entries, a.dir)
    if "program" in a.parts:
        only = tuple(r.strip() for r in a.runs.split(","))
        if set(only) - set(PROGRAM_RUNS):
            ap.error(f"--runs: choose among {', '.join(PROGRAM_RUNS)}")
        part_program(a.circuits, a.qubits, a.depth, a.workers, a.repeat,
                     a.baseline.resolve() if a.baseline is not None else None, only)  # fmt: skip
    if "dispatch" in a.parts:
        part_dispatch(a.calls, a.workers, a.repeat)
    if "hit" in a.parts:
        part_hit(a.hits, a.qubits, a.depth)
    if "offab" in a.parts:
        if a.baseline is None:
            ap.error("offab needs --baseline TREE (a checkout without the cache)")
        part_offab(a.baseline.resolve(), a.calls, a.workers, a.repeat)


if __name__ == "__main__":
    main()
