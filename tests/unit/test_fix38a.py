"""fix38a: review38's F2, F3, F9, F13, F14 and F17 (session 25)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qshpc.store import layout as L
from tests.conftest import job_dir_of, run_cli
from tests.faults.test_bad_input import no_internals, write


def ran(tmp_path: Path, home: Path, source: str, code: int = 0) -> Path:
    """The job of ``source`` run with ``--workers 0`` (its exit code checked)."""
    out = run_cli("run", str(write(tmp_path, "p.py", source)), "--workers", "0")
    assert out.returncode == code, out.stderr
    return job_dir_of(home)


DEEP = "import sys\nfrom qshpc import save_result\nx = []\nfor _ in range({d}):\n    x = [x]\n"


# -- F2: one depth limit for what the store writes; what it holds reads back ---------------


@pytest.mark.parametrize("depth", [150, 900])
def test_a_result_too_deep_is_refused_before_it_is_written(
    tmp_path: Path, qshpc_home: Path, depth: int
) -> None:
    """review38 F2: 450-1000 levels were saved, the job SUCCEEDED, and never read back."""
    prog = write(tmp_path, "d.py", DEEP.format(d=depth) + "save_result({'deep': x})\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1, out.stderr
    assert "the result passed to save_result nests more than 100 levels" in out.stderr
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["state"] == "FAILED" and "flatten them" in meta["error"]


@pytest.mark.parametrize("workers", ["0", pytest.param("1", marks=pytest.mark.mpi)])
def test_a_task_returning_too_deep_a_value_fails_alike(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """The same limit and words with and without workers (a 499-deep list failed pickling on
    a worker; ``--workers 0`` stored 900 levels, then unreadable)."""
    prog = write(
        tmp_path,
        "t.py",
        "from qshpc import distribute_task, get, save_result\n@distribute_task()\n"
        "def mk(n):\n    x = []\n    for _ in range(n):\n        x = [x]\n    return x\n"
        "save_result(len(str(get(mk(500)))))\n",
    )
    out = run_cli("run", str(prog), "--workers", workers, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "the return value of task 0 (mk, list) cannot be serialized: the value nests more " \
        "than 100 levels" in out.stderr  # fmt: skip


def test_a_result_of_100_levels_reads_back(tmp_path: Path, qshpc_home: Path) -> None:
    job = str(ran(tmp_path, qshpc_home, DEEP.format(d=98) + "save_result({'deep': x})\n"))
    out = run_cli("result", job, "--json")
    assert out.returncode == 0 and out.stdout.count("[") == 99, out.stderr


def test_an_older_jobs_deep_result_reads_back(tmp_path: Path, qshpc_home: Path) -> None:
    """A job an older qshpc finished with a 900-deep ``/result`` (written here as it wrote
    it): ``qshpc result`` (both forms) and ``Job.result()`` read it, no RecursionError."""
    from qshpc import open_job

    older = (  # the check an older qshpc lacked, taken out (it cannot be made real otherwise)
        "import qshpc.store.encoding_blob as b, qshpc.store.nesting as n\n"
        "n.check_stored = b.check_stored = lambda *a, **k: None\n"
    )
    job = ran(tmp_path, qshpc_home, older + DEEP.format(d=900) + "save_result({'deep': x})\n")
    deep: Any = []
    for _ in range(900):
        deep = [deep]
    plain = run_cli("result", str(job))
    assert plain.returncode == 0 and plain.stdout.count("[") == 901, plain.stderr[-2000:]
    no_internals(plain.stderr)
    as_json = run_cli("result", str(job), "--json")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    assert as_json.stdout == json.dumps({"deep": deep}) + "\n"
    assert open_job(str(job)).result() == {"deep": deep}


# -- F3: `qshpc result --json` streams: the same text, never whole in memory -----------------


def _many_values() -> list[Any]:
    import numpy as np

    values: list[Any] = [
        None, 1, 2.5, float("nan"), -float("inf"), 1 + 2j, "x\u00e9\"\n", b"ab", [], {}, (),
        set(), frozenset({1}), {1: 2, "1": 3}, {(1, 2): "t", None: 1}, [[[]]],
        {"k": {"j": [1, {"z": None}]}}, np.float32(1.5), np.array(3.0), np.int64(-4),
        np.arange(1000).reshape(10, 100), np.arange(24.0).reshape(2, 3, 4),
        np.ma.masked_array(np.arange(40.0), mask=[i % 3 == 0 for i in range(40)]),
        np.array([1 + 1j] * 50), np.array(["ab"] * 60), np.zeros((0, 3)), np.zeros((40, 0)),
        np.array([np.nan, np.inf] * 40), np.array([True, False] * 30),
        np.zeros(5, dtype=[("a", "i4"), ("b", "f8")]), np.linspace(0, 1, 50, dtype=np.float32),
        np.arange(40, dtype=np.uint8), np.linspace(-1, 1, 40, dtype=np.float16),
        np.array([1.5, np.nan, 2.5] * 20),
        {"a": np.arange(100.0), "b": [np.ones((30, 3)), np.int64(3)], "c": (1, "2")},
    ]  # fmt: skip
    try:
        from qiskit.primitives import BitArray, DataBin, PrimitiveResult, SamplerPubResult
    except ImportError:
        return values
    bits = BitArray(np.arange(64, dtype=np.uint8).reshape(4, 16, 1), num_bits=6)
    pub = SamplerPubResult(DataBin(meas=bits, shape=(4,)), metadata={"shots": 16})
    values.append(PrimitiveResult([pub], metadata={"v": 2}))
    values.append({"res": PrimitiveResult([pub]), "n": 1})
    return values


@pytest.mark.parametrize("chunk", [16, 1 << 20])
def test_streamed_json_is_the_json_it_was(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    from qshpc.store import jsonable

    monkeypatch.setattr(jsonable, "JSON_CHUNK", chunk)  # (arrays cut in many pieces)
    for value in _many_values():
        whole = json.dumps(jsonable.to_jsonable(value))
        assert "".join(jsonable.iter_json(value)) == whole, repr(value)[:200]


def test_result_json_of_a_job_is_the_json_it_was(tmp_path: Path, qshpc_home: Path) -> None:
    from qshpc import open_job
    from qshpc.store.jsonable import to_jsonable

    source = (
        "import numpy as np\nfrom qshpc import save_result\n"
        "save_result({'big': np.arange(300_000.0).reshape(1000, 300), 'm': np.arange(9)"
        ".reshape(3, 3), 'c': 1 + 2j, 'n': None, 1: 'one', 'l': [np.ones(3), 'x', 2.5],"
        " 's': {1, 2}, 'nan': float('nan'), 'b': b'xy'})\n"
    )
    job = str(ran(tmp_path, qshpc_home, source))
    out = run_cli("result", job, "--json")
    assert out.returncode == 0, out.stderr
    assert out.stdout == json.dumps(to_jsonable(open_job(job).result())) + "\n"


# -- F9: a result saved by a job that then FAILED: printed, said, exit 1 --------------------


def test_result_of_a_job_that_failed_after_saving(tmp_path: Path, qshpc_home: Path) -> None:
    from qshpc import open_job

    late = "from qshpc import save_result\nsave_result(5)\nraise RuntimeError('late')\n"
    job = ran(tmp_path, qshpc_home, late, code=1)
    for extra in ([], ["--json"]):
        out = run_cli("result", str(job), *extra)
        assert out.returncode == 1 and out.stdout == "5\n", out
        assert out.stderr == (
            f"qshpc: job {job.name} ended FAILED after saving this result: RuntimeError: late "
            f"(`qshpc status {job.name}` shows it all)\n"
        )
    assert open_job(str(job)).result() == 5  # returned, as documented (nothing lost)


# -- F14: `qshpc result` keeps a dict's order -----------------------------------------------


def test_result_keeps_the_dicts_order(tmp_path: Path, qshpc_home: Path) -> None:
    source = "from qshpc import save_result\nsave_result({f'k{i}': i for i in range(12)})\n"
    out = run_cli("result", str(ran(tmp_path, qshpc_home, source)))
    assert out.returncode == 0, out.stderr
    keys = [ln.split(":")[0].strip(" {'") for ln in out.stdout.splitlines()]
    assert keys == [f"k{i}" for i in range(12)], out.stdout


# -- F17: out of memory in the final fold (`--workers 0`): one line, nothing lost ------------

FOLD = """\
import mmap, sys
import numpy as np
from qshpc import save_result
save_result(np.ones(4_000_000))  # 32 MB: kept in the journal's large part until the fold
ballast = []
size = 1 << 30
while size >= 1 << 20:  # the address space ulimit -v leaves, taken (mapped, never touched)
    try:
        ballast.append(mmap.mmap(-1, size))
    except (OSError, MemoryError):
        size //= 2
freed = 0
while freed < 12 << 20:  # room for the end of the run, not for the fold's 32 MB
    freed += len(ballast.pop())
sys.qshpc_test_ballast = ballast  # kept past the program's end
"""


def test_out_of_memory_in_the_final_fold_is_one_line(tmp_path: Path, qshpc_home: Path) -> None:
    """review38 F17: a MemoryError (or HDF5's "memory allocation failed", which said "Free
    space on its file system", exit 2) in the fold was an internal traceback."""
    import subprocess
    import sys

    prog = write(tmp_path, "fold.py", FOLD)
    out = subprocess.run(
        ["bash", "-c", f'ulimit -v 4000000 && exec "{sys.executable}" -m qshpc run '
         f'"{prog}" --workers 0'],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    job = job_dir_of(qshpc_home)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "ran out of memory" in out.stderr, out.stderr
    assert f"`qshpc status {job.name}` completes job.h5" in out.stderr
    status = run_cli("status", str(job), "--json")  # (without the limit: completes the file)
    assert json.loads(status.stdout)["state"] == "SUCCEEDED", status.stderr
    assert not (job / L.JOURNAL_FILE).exists()
    assert run_cli("result", str(job)).stdout.startswith("array([1., 1., 1.")


# -- F13: the report learns a big result's size and shape without loading it -----------------


@pytest.mark.parametrize(
    ("saved", "says"),
    [
        ("np.arange(300_000.0)", "one array, float64 (300000,), 2.4 MB stored"),  # a large blob
        ("{'a': np.arange(300_000.0), 'b': 1}", "(2.4 MB stored)"),
        ("np.arange(100.0)", None),  # small: read and shown as always
    ],
)
def test_report_of_a_big_result_does_not_load_it(
    tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch, saved: str, says: str | None
) -> None:
    from qshpc.report import data
    from qshpc.report.page import render

    job = ran(
        tmp_path,
        qshpc_home,
        f"import numpy as np\nfrom qshpc import save_result\nsave_result({saved})\n",
    )
    monkeypatch.setattr(data, "RESULT_LOAD_MAX", 1 << 20)  # (the 64 MiB limit, scaled down)
    got = data.read_job(job)
    html = render(got)
    if says is None:
        assert got.result_unloaded is None and got.result is not None
        assert "not read" not in html
    else:
        assert got.result is None and got.has_result
        assert says in html and "too big to show here and was not read" in html, html[-3000:]
        assert f"<code>qshpc result {job.name}</code> prints it" in html
