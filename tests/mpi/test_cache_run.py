"""The result cache in real runs: `qshpc run --cache` under mpiexec -n 1/2/3 and --workers N."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, mpiexec, run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import os
import time
from qshpc import current_task, distribute_task, get, get_arguments, put, save_result

SCALE = {scale}

@distribute_task()
def sq(x):
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write(f"sq {{x}}\\n")
    return {{"x": x, "sq": x * x * SCALE, "seed": current_task().seed}}

@distribute_task(cache=False)
def never(x):
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write(f"never {{x}}\\n")
    return -x

@distribute_task(cache=True)
def always(x, table):
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write(f"always {{x}}\\n")
    return table[x]

n = int(get_arguments().get("n", 12))
table = put(list(range(100, 200)))
out = get([sq(i) for i in range(n)])
save_result({{"sq": out, "never": get([never(i) for i in range(3)]),
             "always": get([always(i, table) for i in range(3)])}})
"""


def _write(folder: Path, scale: int = 1) -> Path:
    prog = folder / "cached.py"
    prog.write_text(PROGRAM.format(scale=scale))
    return prog


def _runs(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


def _run(prog: Path, log: Path, *args: str, ranks: int | None = None, n: int = 12) -> dict:
    argfile = prog.parent / f"args-{n}.json"
    argfile.write_text(json.dumps({"n": n}))
    extra = [] if ranks is not None else ["--workers", "2"]
    out = run_cli(
        "run", str(prog), "--arguments", str(argfile), *extra, *args,
        ranks=ranks, env={"RUNS_LOG": str(log)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    return {"job": job, "stdout": out.stdout}


def _tasks(job: str) -> list[dict]:
    from qshpc.jobs.paths import resolve_job_dir
    from qshpc.store import JobReader

    with JobReader.open(resolve_job_dir(job)) as r:
        return r.tasks()


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_a_rerun_takes_every_result_from_the_cache(ranks: int, qshpc_home: Path) -> None:
    prog, log = _write(qshpc_home.parent), qshpc_home.parent / "runs.log"
    first = _run(prog, log, "--cache", ranks=ranks)
    ran = _runs(log)
    assert len(ran) == 12 + 3 + 3
    second = _run(prog, log, "--cache", ranks=ranks)
    assert _runs(log) == [f"never {i}" for i in range(3)]  # cache=False always runs
    assert "(3 tasks run, 15 from the cache)" in second["stdout"]
    res1 = json.loads(run_cli("result", first["job"], "--json").stdout)
    res2 = json.loads(run_cli("result", second["job"], "--json").stdout)
    assert res1 == res2 and res2["always"] == [100, 101, 102]
    status = run_cli("status", second["job"]).stdout
    assert "18 done (15 from cache)" in status
    meta = json.loads(run_cli("status", second["job"], "--json").stdout)
    assert meta["tasks_from_cache"] == 15
    # Each hit is a task record whose provenance names the job and task that computed it.
    firsts = {t["task_id"]: t for t in _tasks(first["job"])}
    for t in _tasks(second["job"]):
        prov = t["provenance"].get("cache")
        if t["function"] == "never":
            assert prov is None
            continue
        assert prov["job"] == first["job"] and t["state"] == "SUCCEEDED"
        assert firsts[prov["task"]]["function"] == t["function"]
        assert len(t["key"]) == 64  # the record of a hit is keyed by its cache key


def test_only_what_changed_runs_again(qshpc_home: Path, tmp_path: Path) -> None:
    prog, log = _write(tmp_path), tmp_path / "runs.log"
    _run(prog, log, "--cache")
    _runs(log)
    _run(prog, log, "--cache", n=15)  # the sweep extended by three points
    assert [r for r in _runs(log) if r.startswith("sq")] == ["sq 12", "sq 13", "sq 14"]
    _write(tmp_path, scale=2)  # a global the function reads changed
    _run(prog, log, "--cache", n=15)
    assert len([r for r in _runs(log) if r.startswith("sq")]) == 15
    # Without --cache only cache=True tasks use it.
    _run(prog, log, n=15)
    ran = _runs(log)
    assert len([r for r in ran if r.startswith("sq")]) == 15
    assert not [r for r in ran if r.startswith("always")]


def test_the_seed_is_part_of_the_key(qshpc_home: Path, tmp_path: Path) -> None:
    prog, log = _write(tmp_path), tmp_path / "runs.log"
    a = _run(prog, log, "--cache", "--seed", "7")
    _runs(log)
    b = _run(prog, log, "--cache", "--seed", "7")
    assert not [r for r in _runs(log) if r.startswith("sq")]
    _run(prog, log, "--cache", "--seed", "8")
    assert len([r for r in _runs(log) if r.startswith("sq")]) == 12
    ra = json.loads(run_cli("result", a["job"], "--json").stdout)
    rb = json.loads(run_cli("result", b["job"], "--json").stdout)
    assert ra["sq"] == rb["sq"] and ra["sq"][0]["seed"] is not None


def test_results_outlive_their_job_and_lookup_finds_them(qshpc_home: Path, tmp_path: Path) -> None:
    prog, log = _write(tmp_path), tmp_path / "runs.log"
    first = _run(prog, log, "--cache", "--cache-dir", str(tmp_path / "shared cache"))
    assert run_cli("rm", first["job"]).returncode == 0
    # A notebook later: the same function defined anew, looked up without a job.
    code = (
        "import json, os\n"
        "os.environ['RUNS_LOG'] = os.devnull\n"
        "import qshpc.cache\n"
        f"src = open({str(prog)!r}).read().split('n = int(')[0]\n"
        "g = {'__name__': '__main__'}\n"
        "exec(compile(src, 'notebook-cell', 'exec'), g)\n"
        f"hit = qshpc.cache.lookup(g['sq'], (5,), cache_dir={str(tmp_path / 'shared cache')!r})\n"
        "print(json.dumps({'value': hit.value, 'job': hit.header.job, 'task': hit.header.task}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {"value": {"x": 5, "sq": 25, "seed": None}, "job": first["job"], "task": "5"}
    ls = run_cli("cache", "ls", "--cache-dir", str(tmp_path / "shared cache"), "--json")
    assert {r["job"] for r in json.loads(ls.stdout)} == {first["job"]}


def test_local_client_and_program_cache(qshpc_home: Path, tmp_path: Path) -> None:
    _write(tmp_path)
    log = tmp_path / "runs.log"
    code = f"""
import os
os.environ["RUNS_LOG"] = {str(log)!r}
from qshpc import LocalClient, Program
p = Program(title="c", entrypoint="cached.py", working_dir={str(tmp_path)!r})
r1 = LocalClient(workers=1, cache=True).run(p, arguments={{"n": 4}}).result()
r2 = LocalClient(workers=1).run(Program(title="c", entrypoint="cached.py",
    working_dir={str(tmp_path)!r}, cache=True), arguments={{"n": 4}}).result()
assert r1 == r2, (r1, r2)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ran = _runs(log)
    assert [r for r in ran if r.startswith("sq")] == [f"sq {i}" for i in range(4)]


def test_concurrent_jobs_fill_one_cache(qshpc_home: Path, tmp_path: Path) -> None:
    prog, log = _write(tmp_path), tmp_path / "runs.log"
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"n": 30}))
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--arguments", str(argfile),
           "--workers", "1", "--cache"]  # fmt: skip
    env = {**os.environ, "RUNS_LOG": str(log), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(4)]  # fmt: skip
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()
    _runs(log)
    again = _run(prog, log, "--cache", n=30)
    assert "(3 tasks run, 33 from the cache)" in again["stdout"]
    assert [r for r in _runs(log) if not r.startswith("never")] == []


def test_an_unsafe_cache_folder_is_refused_before_the_job(qshpc_home: Path, tmp_path: Path) -> None:
    prog = _write(tmp_path)
    bad = tmp_path / "open"
    bad.mkdir()
    bad.chmod(0o777)
    out = run_cli("run", str(prog), "--workers", "0", "--cache-dir", str(bad))
    assert out.returncode == 2
    assert "can be written by every user" in out.stderr and "Traceback" not in out.stderr
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())


NESTED = """\
import os
from qshpc import distribute_task, get, save_result

@distribute_task(cache=True)
def leaf(x):
    with open(os.environ["RUNS_LOG"], "a") as f:
        f.write(f"leaf {x}\\n")
    return x * 10

@distribute_task()
def parent(x):
    return get(leaf(x)) + get(leaf(x + 100))

save_result(get([parent(i) for i in range(4)]))
"""


@pytest.mark.parametrize("how", ["plain python", "workers"])
def test_nested_calls_and_plain_python_use_the_cache(
    how: str, qshpc_home: Path, tmp_path: Path
) -> None:
    prog, log = tmp_path / "nested.py", tmp_path / "runs.log"
    prog.write_text(NESTED)
    env = {**os.environ, "RUNS_LOG": str(log), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        if how == "plain python":
            out = subprocess.run([sys.executable, str(prog)], capture_output=True, text=True,
                                 env=env, timeout=120)  # fmt: skip
        else:
            out = run_cli("run", str(prog), "--workers", "2", env={"RUNS_LOG": str(log)})
        assert out.returncode == 0, out.stdout + out.stderr
        assert "saved in memory only" in out.stdout or how == "workers"
    ran = _runs(log)
    assert sorted(ran) == sorted(
        [f"leaf {i}" for i in range(4)] + [f"leaf {i + 100}" for i in range(4)]
    )


PRIMITIVES = """\
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qshpc import get_arguments, save_result
from qshpc.aer import EstimatorV2, SamplerV2

shift = float(get_arguments().get("shift", 0.0))
v = ParameterVector("v", 3)
qc = QuantumCircuit(2)
qc.ry(v[0], 0)
qc.rx(v[2] + 2 * v[1] + shift, 1)  # a compound expression
qc.cx(0, 1)
values = np.linspace(0.1, 2.0, 24).reshape(8, 3)
opts = {"rows_per_task": 4}
s = SamplerV2(default_shots=64, options=opts).run([(qc.measure_all(inplace=False), values)])
e = EstimatorV2(default_precision=0.05, options=opts).run([(qc, [["ZZ"], ["XI"]], values)])
bits = s.result()[0].data.meas
save_result({"counts": [bits.slice_shots(range(64)).get_counts(i) for i in range(8)],
             "evs": e.result()[0].data.evs.tolist()})
"""


def test_primitive_blocks_of_a_parameterized_circuit_hit_in_a_new_process(
    qshpc_home: Path, tmp_path: Path
) -> None:
    # A Parameter's UUID is random per process and QPY holds it: the blocks are
    # keyed by the circuit's parameters by name, and still get its own QPY.
    prog = tmp_path / "prims.py"
    prog.write_text(PRIMITIVES)
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps({"shift": 0.5}))

    def run(*extra: str) -> tuple[str, dict]:
        out = run_cli("run", str(prog), "--workers", "2", "--cache", "--seed", "5", *extra)
        assert out.returncode == 0, out.stdout + out.stderr
        job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")]
        return out.stdout, json.loads(run_cli("result", job[-1], "--json").stdout)

    first_out, first = run()
    assert "from the cache" not in first_out, first_out
    second_out, second = run()
    assert "(0 tasks run, " in second_out, second_out
    assert second == first
    third_out, third = run("--arguments", str(shifted))  # another circuit: every block runs
    assert "from the cache" not in third_out, third_out
    assert third["evs"] != first["evs"]


PROBE = """\
import os
with open(os.environ["PROBE_LOG"], "a") as f:
    f.write(f"{os.getpid()}\\n")
"""

SQUARES = """\
from qshpc import distribute_task, get, save_result

@distribute_task()
def sq(x):
    return x * x

save_result(get([sq(i) for i in range(8)]))
"""


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
@pytest.mark.parametrize("ranks", [None, 3])
def test_a_warm_rerun_s_workers_never_preload(
    ranks: int | None, qshpc_home: Path, tmp_path: Path
) -> None:
    """With --cache and ranks crowding their cores (here all on one core), a worker preloads
    at its first batch: a rerun whose calls all hit sends none, so its workers import nothing
    the preload names (qiskit and Aer for the seed program) while rank 0 starts. A cold run
    preloads at its first batch, and is right.
    """
    (tmp_path / "probe14.py").write_text(PROBE)
    (tmp_path / "squares.py").write_text(SQUARES)
    probes = tmp_path / "probes.log"
    env = {"QSHPC_PRELOAD": "probe14", "PROBE_LOG": str(probes), "QSHPC_FORK_SERVER": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}  # fmt: skip
    extra = ["--workers", "2"] if ranks is None else []

    def run(*args: str) -> tuple[str, list[str]]:
        cmd = [sys.executable, "-m", "qshpc", "run", str(tmp_path / "squares.py"), *extra, *args]
        launch = [mpiexec(), "-n", str(ranks)] if ranks is not None else []
        out = subprocess.run(["taskset", "-c", "0", *launch, *cmd], capture_output=True,
                             text=True, timeout=120, env={**os.environ, **env})  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        imported = probes.read_text().split() if probes.exists() else []
        probes.unlink(missing_ok=True)
        return out.stdout, imported

    def result(stdout: str) -> object:
        job = [ln.split()[2] for ln in stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
        return json.loads(run_cli("result", job, "--json").stdout)

    stdout, imported = run()  # no cache: both workers preload at their start
    assert len(imported) == 2 and "(8 tasks run)" in stdout
    stdout, imported = run("--cache")  # cold: each worker that got a batch preloaded, once
    assert 1 <= len(imported) <= 2 and len(set(imported)) == len(imported), imported
    assert "(8 tasks run)" in stdout and result(stdout) == [i * i for i in range(8)]
    stdout, imported = run("--cache")  # warm: no batch, no preload
    assert imported == [] and "(0 tasks run, 8 from the cache)" in stdout
    assert result(stdout) == [i * i for i in range(8)]
    stdout, imported = run("--no-cache")  # the cache turned off again: preloaded at the start
    assert len(imported) == 2 and "(8 tasks run)" in stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_a_client_s_warm_rerun_s_workers_never_preload(qshpc_home: Path, tmp_path: Path) -> None:
    """``LocalClient(cache=True)`` (a program's ``cache=True`` in the job's meta): the ranks
    are told (``QSHPC_CACHE_JOB``), and on crowded cores a warm rerun's workers import
    nothing, as with ``qshpc run --cache``; the variable does not reach the program."""
    (tmp_path / "probe14.py").write_text(PROBE)
    (tmp_path / "squares.py").write_text(
        SQUARES.replace(
            "save_result(get(",
            "import os\nassert 'QSHPC_CACHE_JOB' not in os.environ\nsave_result(get(",
        )
    )
    probes = tmp_path / "probes.log"
    code = f"""
from qshpc import LocalClient, Program
p = Program(title="s", entrypoint="squares.py", working_dir={str(tmp_path)!r}, cache=True)
job = LocalClient(workers=2).run(p)
print(job.result(), job.status())
"""
    env = {**os.environ, "QSHPC_PRELOAD": "probe14", "PROBE_LOG": str(probes),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}  # fmt: skip

    def run() -> tuple[str, list[str]]:
        out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=180, env=env)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        imported = probes.read_text().split() if probes.exists() else []
        probes.unlink(missing_ok=True)
        return out.stdout, imported

    stdout, imported = run()  # cold: the workers that got a batch preloaded
    assert str([i * i for i in range(8)]) in stdout and "SUCCEEDED" in stdout, stdout
    assert 1 <= len(imported) <= 2, imported
    stdout, imported = run()  # warm: every call a hit, no batch, no preload
    assert str([i * i for i in range(8)]) in stdout and imported == [], (stdout, imported)


LARGE = """\
from qiskit.result import QuasiDistribution
from qshpc import distribute_task, get, save_result

@distribute_task()
def dist(x):
    return QuasiDistribution({i: (i + x) / 1000 for i in range(300)}, shots=1000 + x)

@distribute_task()
def floats(x):
    return [i / 7 + x for i in range(300)]

refs = [dist(i) for i in range(6)]
flo = [floats(i) for i in range(6)]
import concurrent.futures
concurrent.futures.wait(refs + flo)
print("UNREAD", sum(type(r._value).__name__ == "Stored" for r in refs + flo))
got = get(refs)
assert all(type(d) is QuasiDistribution and d.shots == 1000 + i for i, d in enumerate(got))
assert refs[0].result() is refs[0].result()  # decoded once: the same object at every read
save_result({"dists": got, "floats": get(flo)})
print("SUMS", [round(sum(d.values()), 6) for d in got], [round(sum(f), 6) for f in get(flo)])
"""


def test_large_hits_read_and_store_as_computed(qshpc_home: Path, tmp_path: Path) -> None:
    """A warm rerun of results over 1 KiB (a QuasiDistribution, a list of floats): each hit is
    recorded from the entry's bytes and decoded when the program reads it; the program, the
    job's saved result and its task records see what the cold run computed, typed."""
    from qiskit.result import QuasiDistribution

    from qshpc.jobs.paths import resolve_job_dir
    from qshpc.store import JobReader

    prog = tmp_path / "large.py"
    prog.write_text(LARGE)

    def run() -> tuple[str, str]:
        out = run_cli("run", str(prog), "--workers", "2", "--cache")
        assert out.returncode == 0, out.stdout + out.stderr
        job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")]
        sums = [ln for ln in out.stdout.splitlines() if ln.startswith(("SUMS", "UNREAD"))]
        return job[-1], "\n".join(sums)

    cold_job, cold_sums = run()
    warm_job, warm_sums = run()
    assert "UNREAD 0" in cold_sums and "UNREAD 12" in warm_sums, (cold_sums, warm_sums)
    cold_sums, warm_sums = cold_sums.split("\n")[1], warm_sums.split("\n")[1]
    assert warm_sums == cold_sums
    results, records = [], []
    for job in (cold_job, warm_job):
        with JobReader.open(resolve_job_dir(job)) as r:
            results.append(r.result())
            records.append({t["task_id"]: r.task_result(t["task_id"]) for t in r.tasks()})
    assert results[0] == results[1]
    assert all(type(d) is QuasiDistribution for d in results[1]["dists"])
    assert records[0] == records[1] and len(records[1]) == 12
    status = run_cli("status", warm_job)
    assert "12 from the cache" in status.stdout or "(12 from cache)" in status.stdout, status.stdout


def test_hits_show_in_the_notebook_card_the_tables_and_the_report(qshpc_home: Path) -> None:
    """review26: `qshpc status` said '18 done (15 from cache)', but the notebook's card,
    the jobs table, `job.tasks()` and the report never said so (the report showed the
    hits as tasks of 0 s on rank 0 and 'workers busy 0%')."""
    import qshpc
    from qshpc.report.card import card_html, jobs_table_html
    from qshpc.report.data import read_job
    from qshpc.report.page import render

    prog, log = _write(qshpc_home.parent), qshpc_home.parent / "runs.log"
    first = _run(prog, log, "--cache")
    second = _run(prog, log, "--cache")
    job = qshpc.open_job(second["job"])
    info = job.info()
    assert "(15 from cache)" in card_html(info), card_html(info)
    assert "18 done (15 from cache)" in jobs_table_html([info])
    frame = job.tasks(as_frame=True)
    assert int(frame["from_cache"].sum()) == 15
    assert int(job.tasks().to_pandas()["from_cache"].sum()) == 15
    assert (
        int(qshpc.list_jobs().to_pandas().set_index("job_id").loc[second["job"], "from_cache"])
        == 15
    )
    page = render(read_job(job.job_dir))
    assert "from the cache" in page and f"computed by earlier jobs ({first['job']})" in page
