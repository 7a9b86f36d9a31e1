"""Cold start: a small job, whole commands from the shell, against one plain process and executorlib.

Workload: the seed program (``examples/program_4.py``: one ``@distribute_task``
call per circuit, ``Sampler().run(circuit).result().quasi_dists[0]``, exact
probabilities) on N tiny circuits (default 512, ``random_circuit(2, 2)``
seeded, measured). Every command is a fresh process, timed from its start to
its exit, the commands taking turns within one run (each round runs every
variant once, in an order rotated from round to round):

- ``plain``: one Python process: load the circuits from QPY, one preset pass
  manager, transpile all, one Aer batch, write JSON (the same exact
  probabilities; ``benchmarks/_cold_task.py``).
- ``executorlib``: executorlib's ``SingleNodeExecutor(max_workers=2,
  block_allocation=True)``, one ``submit`` per circuit, the same task body per
  circuit (one pass manager and simulator per worker process), JSON out.
- ``qshpc``: ``python -m qshpc run PROGRAM --arguments ARGS.h5`` (the embedded
  local default: one worker rank per core).
- ``qshpc-mpiexec``: ``mpiexec -n 3 python -m qshpc run PROGRAM --arguments ARGS.h5``.
- ``qshpc-nofork``, ``qshpc-mpiexec-nofork``: the same two with ``QSHPC_FORK_SERVER=0``
  (every rank imports qiskit itself, as before session 19's fork server).
- ``client``: a fresh Python process that loads the circuits from QPY (a
  notebook has them in memory) and calls ``LocalClient(workers=2).run(program,
  arguments={"circuits": circuits}).result()``, then writes JSON.
- ``client-warm``: the same command, timed from ``run`` to ``result`` returned
  only (the helper reports it): what a notebook kernel that already imported
  qiskit and qshpc and built the circuits waits for. Its CPU: that process's
  and its children's over the same span (the process's own is printed apart).
- ``one-task``: ``python -m qshpc run`` of a program with one trivial call.
- ``one-task-mpiexec``: the same under ``mpiexec -n 3``: with ``qshpc`` /
  ``qshpc-mpiexec``, what ``qshpc run``'s own launcher costs (its Python start
  and work before it starts mpiexec, its watch, its end).
- ``one-circuit`` and ``plain-1``: the seed program and the plain process on
  one circuit.

Per qshpc run, where the time goes: the job's meta (created, started,
finished) and, with ``QSHPC_TIMELINE=1`` (set here), a timeline per process in
the job's ``logs/timeline-*.json``: when each rank's process started, reached
qshpc's code, had MPI, was ready (imports done), and which heavy packages it
had loaded. ``--importtime`` adds one diagnostic run of ``mpiexec -n 3`` with
``python -X importtime`` on every rank (not timed).

Load: the machine's CPU time not spent by this benchmark's commands is
printed per variant ("others %": share of the 2 cores others used while it
ran); figures taken while others are busy say little.

Run:
    python benchmarks/coldstart.py                   # 10 rounds, 512 circuits
    python benchmarks/coldstart.py --rounds 3 --only plain,qshpc --importtime
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _trees import precompile

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable
HEAVY = (
    "qiskit",
    "qiskit_aer",
    "h5py",
    "numpy",
    "mpi4py",
    "typer",
    "click",
    "pydantic",
    "cloudpickle",
    "msgpack",
    "scipy",
    "submitit",
)


@dataclass
class Run:
    wall: float
    cpu: float
    others: float  # CPU seconds used by other processes while it ran
    launched: float  # epoch at launch
    stdout: str
    job_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_inputs(tmp: Path, n: int) -> None:
    """Circuits as QPY (baselines) and as a qshpc arguments file; programs and helpers."""
    from qiskit import qpy
    from qiskit.circuit.random import random_circuit

    from qshpc import save_arguments

    circuits = []
    for i in range(n):
        circuit = random_circuit(2, 2, seed=i)
        circuit.measure_all()
        circuits.append(circuit)
    for name, cs in (("circuits", circuits), ("circuits1", circuits[:1])):
        with open(tmp / f"{name}.qpy", "wb") as f:
            qpy.dump(cs, f)
    save_arguments(tmp / "args.h5", {"circuits": circuits})
    save_arguments(tmp / "args1.h5", {"circuits": circuits[:1]})
    shutil.copy(ROOT / "examples" / "program_4.py", tmp / "program_4.py")
    for helper in ("_cold_task.py", "_cold_plain.py", "_cold_executorlib.py", "_cold_client.py"):
        shutil.copy(HERE / helper, tmp / helper)
    shutil.copy(HERE / "_cold_one.py", tmp / "one_task.py")


QSHPC_VARIANTS = (
    "qshpc",
    "qshpc-nofork",
    "qshpc-mpiexec",
    "qshpc-mpiexec-nofork",
    "client",
    "client-warm",
    "one-task",
    "one-task-mpiexec",
    "one-circuit",
)
#: Variants timed by the command itself (``BENCH {"run_to_result_s", "run_to_result_cpu_s", "run_at"}``),
#: not from the shell: only the span a warm interpreter waits for.
SELF_TIMED = ("client-warm",)


def variants(tmp: Path) -> dict[str, list[str]]:
    qshpc = [PY, "-m", "qshpc", "run"]
    mpiexec = (
        str(Path(PY).parent / "mpiexec") if (Path(PY).parent / "mpiexec").exists() else "mpiexec"
    )
    return {
        "plain": [PY, "_cold_plain.py", "circuits.qpy", "out-plain.json"],
        "executorlib": [PY, "_cold_executorlib.py", "circuits.qpy", "out-exe.json"],
        "qshpc": [*qshpc, "program_4.py", "--arguments", "args.h5"],
        "qshpc-mpiexec": [mpiexec, "-n", "3", *qshpc, "program_4.py", "--arguments", "args.h5"],
        "client": [PY, "_cold_client.py", "circuits.qpy", "program_4.py", "out-client.json"],
        "client-warm": [PY, "_cold_client.py", "circuits.qpy", "program_4.py", "out-warm.json"],
        "one-task": [*qshpc, "one_task.py"],
        "one-task-mpiexec": [mpiexec, "-n", "3", *qshpc, "one_task.py"],
        "one-circuit": [*qshpc, "program_4.py", "--arguments", "args1.h5"],
        "qshpc-nofork": [*qshpc, "program_4.py", "--arguments", "args.h5"],
        "qshpc-mpiexec-nofork": [
            mpiexec,
            "-n",
            "3",
            *qshpc,
            "program_4.py",
            "--arguments",
            "args.h5",
        ],
        "plain-1": [PY, "_cold_plain.py", "circuits1.qpy", "out-plain1.json"],
    }


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(cmd: list[str], tmp: Path, env: dict[str, str], self_timed: bool = False) -> Run:
    cpu0, busy0 = _children_cpu(), _busy_s()
    launched = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    others = max(0.0, _busy_s() - busy0 - cpu)
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    run = Run(wall, cpu, others, launched, proc.stdout)
    for line in proc.stdout.splitlines():
        if line.startswith("qshpc: store "):
            run.job_dir = Path(line.split("qshpc: store ", 1)[1].strip()).parent
        elif line.startswith("BENCH "):
            run.extra = json.loads(line[6:])
            if "job_dir" in run.extra:
                run.job_dir = Path(run.extra["job_dir"])
    if self_timed:  # the span the command measured itself (see SELF_TIMED)
        run.launched = run.extra["run_at"]
        run.wall = run.extra["run_to_result_s"]
        run.cpu = run.extra["run_to_result_cpu_s"]
    return run


def job_phases(run: Run) -> dict[str, float]:
    """Seconds of each phase of a qshpc run, from its meta and its timelines."""
    from qshpc.store import JobReader

    assert run.job_dir is not None
    with JobReader.open(run.job_dir) as r:
        meta = r.meta()
    t0 = run.launched
    end = t0 + run.wall
    phases = {
        "launch -> job created": meta["created"] - t0,
        "created -> started (arguments read, store open)": meta["started"] - meta["created"],
        "started -> finished (the program: its tasks)": meta["finished"] - meta["started"],
        "finished -> exit (finalize, MPI_Finalize, launcher)": end - meta["finished"],
    }
    if "run_to_result_s" in run.extra:  # the client: what its user waited for in `result()`
        phases["client: run() -> result() returned"] = run.extra["run_to_result_s"]
    if "run_to_result_own_cpu_s" in run.extra:  # CPU s, not wall: the kernel's own meanwhile
        phases["client: its own CPU s meanwhile (write, waits, result)"] = run.extra[
            "run_to_result_own_cpu_s"
        ]
    return phases


def timelines(run: Run) -> dict[str, dict[str, Any]]:
    """Per process (``launcher``, ``rank 0`` ...): marks in seconds after launch, packages loaded."""
    out: dict[str, dict[str, Any]] = {}
    if run.job_dir is None:
        return out
    for path in sorted((run.job_dir / "logs").glob("timeline-*.json")):
        data = json.loads(path.read_text())
        name = data.get("role", path.stem)
        marks = {"process start": data["proc_start"] - run.launched}
        cpu = {"process start": 0.0}
        for mark, t, c in data["marks"]:
            marks[mark] = t - run.launched
            cpu[mark] = c
        out[name] = {
            "marks": marks,
            "cpu": cpu,
            "cpu_total": data.get("cpu_s", 0.0),
            "modules": data.get("modules", []),
        }
    return out


def check_result(run: Run, tmp: Path) -> None:
    """The qshpc result equals the plain process's (exact probabilities)."""
    from qshpc import Job

    assert run.job_dir is not None
    result = Job(run.job_dir).result()["results"]
    plain = json.loads((tmp / "out-plain.json").read_text())["results"]
    worst = max(
        abs(float(result[i].get(int(k), 0.0)) - v)
        for i in range(len(plain))
        for k, v in plain[i].items()
    )
    if len(result) != len(plain) or worst > 1e-9:
        raise SystemExit(f"qshpc's result differs from the plain process's (worst {worst})")


def importtime_report(tmp: Path, env: dict[str, str]) -> None:
    """One untimed ``mpiexec -n 3`` run with ``-X importtime`` per rank: what each rank imports."""
    mpiexec = variants(tmp)["qshpc-mpiexec"][0]
    inner = f"exec {PY} -X importtime -m qshpc run program_4.py --arguments args.h5 2>imp.$PMI_RANK"
    subprocess.run(
        [mpiexec, "-n", "3", "sh", "-c", inner], cwd=tmp, env=env, check=True, capture_output=True
    )
    subprocess.run(
        ["sh", "-c", f"{PY} -X importtime _cold_plain.py circuits.qpy out-imp.json 2>imp.plain"],
        cwd=tmp,
        env=env,
        check=True,
        capture_output=True,
    )
    print("\n## Imports per process (`python -X importtime`, one untimed run; ms of wall time)\n")
    print("| process | modules | self sum ms | " + " | ".join(HEAVY) + " |")
    print("|---|---:|---:|" + "---:|" * len(HEAVY))
    for label, name in (
        ("plain", "imp.plain"),
        ("rank 0", "imp.0"),
        ("rank 1", "imp.1"),
        ("rank 2", "imp.2"),
    ):
        count, total, cumul = 0, 0, {}  # type: ignore[var-annotated]
        for line in (tmp / name).read_text().splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _, mod = line[len("import time:") :].split("|")
            count += 1
            total += int(self_us)
            top = mod.strip().split(".")[0]
            if top in HEAVY:
                cumul[top] = cumul.get(top, 0.0) + int(self_us) / 1000
        cells = [f"{cumul[h]:.0f}" if h in cumul else "-" for h in HEAVY]
        print(f"| {label} | {count} | {total / 1000:.0f} | " + " | ".join(cells) + " |")
    print("\n(a package's cell: the self time of its modules; '-' = never imported)")


def summary(label: str, xs: list[float]) -> str:
    return f"{min(xs):.2f} | {statistics.median(xs):.2f} | {max(xs):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--circuits", type=int, default=512)
    ap.add_argument("--only", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--importtime", action="store_true", help="add the per-rank import report")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument(
        "--compare",
        metavar="TREE",
        help="also run the qshpc variants on the qshpc code in TREE (e.g. a checkout of main), "
        "as '<variant>@old', taking turns with this tree's",
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qshpc-cold-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["QSHPC_HOME"] = str(tmp / "home")
    env["QSHPC_TIMELINE"] = "1"
    env.setdefault("QSHPC_PROGRESS_S", "0")
    make_inputs(tmp, args.circuits)
    precompile(ROOT, *([Path(args.compare).resolve()] if args.compare else []))
    cmds = variants(tmp)
    envs = {n: ({**env, "QSHPC_FORK_SERVER": "0"} if n.endswith("-nofork") else env) for n in cmds}
    names = [n for n in cmds if not args.only or n in args.only.split(",")]
    if args.compare:
        for name in [n for n in names if n in QSHPC_VARIANTS]:
            old_env = dict(envs[name])  # (a -nofork variant's setting kept)
            old_env["PYTHONPATH"] = env["PYTHONPATH"].replace(
                str(ROOT), str(Path(args.compare).resolve()), 1
            )
            cmds[f"{name}@old"] = cmds[name]
            envs[f"{name}@old"] = old_env
            names.insert(names.index(name) + 1, f"{name}@old")
    runs: dict[str, list[Run]] = {n: [] for n in names}
    load0 = os.getloadavg()
    print(f"# Cold start, {args.circuits} circuits, {args.rounds} rounds, {os.cpu_count()} cores")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            run = run_once(cmds[name], tmp, envs[name], name.split("@")[0] in SELF_TIMED)
            runs[name].append(run)
        print(
            f"round {r + 1}: "
            + ", ".join(f"{n} {runs[n][-1].wall:.2f}s" for n in names)
            + f" (others used {sum(runs[n][-1].others for n in names):.1f} CPU s)",
            file=sys.stderr,
            flush=True,
        )
        if r == 0 and "plain" in runs:
            for name in ("qshpc", "qshpc-mpiexec", "client", "client-warm"):
                if name in runs:
                    check_result(runs[name][0], tmp)
    load1 = os.getloadavg()
    ncpu = os.cpu_count() or 1

    print("\n## Whole commands (s; min | median | max), CPU s and others' share of the cores\n")
    print("| variant | wall min | median | max | CPU s (median) | others % (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        rs = runs[name]
        walls = [x.wall for x in rs]
        cpu = statistics.median(x.cpu for x in rs)
        others = statistics.median(100 * x.others / (x.wall * ncpu) for x in rs)
        print(f"| {name} | {summary(name, walls)} | {cpu:.2f} | {others:.0f} |")

    def ratio(a: str, b: str) -> str | None:
        if a not in runs or b not in runs:
            return None
        per_round = [x.wall / y.wall for x, y in zip(runs[a], runs[b], strict=True)]
        mins = min(x.wall for x in runs[a]) / min(x.wall for x in runs[b])
        return (
            f"| {a} / {b} | {mins:.2f} | {statistics.median(per_round):.2f} | "
            f"{min(per_round):.2f}-{max(per_round):.2f} |"
        )

    rows = [
        ratio("qshpc", "plain"),
        ratio("executorlib", "qshpc"),
        ratio("qshpc-mpiexec", "plain"),
        ratio("executorlib", "qshpc-mpiexec"),
        ratio("client", "plain"),
        ratio("executorlib", "client"),
        ratio("client-warm", "plain"),
        ratio("executorlib", "client-warm"),
        ratio("one-circuit", "plain-1"),
        ratio("qshpc", "qshpc-mpiexec"),  # what the launcher costs
        ratio("qshpc", "qshpc-nofork"),  # what the fork server gains
        ratio("qshpc-mpiexec", "qshpc-mpiexec-nofork"),
        ratio("one-task", "one-task-mpiexec"),
        *[ratio(n, f"{n}@old") for n in QSHPC_VARIANTS],
    ]
    print("\n## Ratios (targets: qshpc / plain <= 1.3, executorlib / qshpc >= 1.5)\n")
    print("| ratio | of the mins | median of per-round | range |")
    print("|---|---:|---:|---:|")
    for row in rows:
        if row:
            print(row)

    pairs = [(a, f"{a}-mpiexec") for a in ("qshpc", "one-task")]
    pairs += [(f"{a}@old", f"{b}@old") for a, b in pairs]
    pairs = [(a, b) for a, b in pairs if a in runs and b in runs]
    if pairs:
        print("\n## What `qshpc run`'s own launcher costs: the same job with it and under a plain")
        print("`mpiexec -n 3` (per round, s; positive: the launcher is slower)\n")
        print("| pair | wall, median (range) | CPU, median (range) |")
        print("|---|---:|---:|")
        for a, b in pairs:
            dw = [x.wall - y.wall for x, y in zip(runs[a], runs[b], strict=True)]
            dc = [x.cpu - y.cpu for x, y in zip(runs[a], runs[b], strict=True)]
            print(
                f"| {a} - {b} | {statistics.median(dw):+.3f} ({min(dw):+.3f}..{max(dw):+.3f}) "
                f"| {statistics.median(dc):+.3f} ({min(dc):+.3f}..{max(dc):+.3f}) |"
            )

    for name in names:
        qruns = [x for x in runs[name] if x.job_dir is not None]
        if not qruns:
            continue
        print(f"\n## {name}: where the time goes (s, median over {len(qruns)} runs)\n")
        phases = [job_phases(x) for x in qruns]
        print("| phase | median | min | max |")
        print("|---|---:|---:|---:|")
        for key in phases[0]:
            vals = [p[key] for p in phases]
            print(f"| {key} | {statistics.median(vals):.3f} | {min(vals):.3f} | {max(vals):.3f} |")
        lines = [timelines(x) for x in qruns]
        procs = sorted({p for t in lines for p in t}, key=lambda p: (p != "launcher", p))
        if not procs:
            continue
        print(
            "\nPer process: each step, when it was reached (s after the command started) and "
            "the process's CPU seconds spent getting there from the step before (medians):\n"
        )
        for proc in procs:
            have = [t[proc] for t in lines if proc in t]
            steps = []
            prev = None
            for k in have[0]["marks"]:
                at = statistics.median(h["marks"][k] for h in have if k in h["marks"])
                cpu = [h["cpu"][k] - h["cpu"][prev] for h in have if k in h["cpu"] and prev]
                steps.append(f"{k} {at:.2f}" + (f" (+{statistics.median(cpu):.2f})" if cpu else ""))
                prev = k
            mods = ", ".join(m for m in have[0]["modules"] if m in HEAVY) or "none of the heavy"
            total = [h["cpu_total"] for h in have]
            print(
                f"- {proc}: {'; '.join(steps)}. CPU in all {statistics.median(total):.3f} s "
                f"({min(total):.3f}-{max(total):.3f}). Loaded: {mods}"
            )

    if args.importtime:
        importtime_report(tmp, env)
    print(f"\nload average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
