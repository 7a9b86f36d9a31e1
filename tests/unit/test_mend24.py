"""mend24: session 23's leftovers (counts of ended jobs, messages that name their source)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import job_dir_of, run_cli


def test_a_damaged_jobs_counts_claim_no_never_started_calls() -> None:
    """A DAMAGED job's counts are of the results still readable (reader.damaged_meta: FAILED
    0), not of the calls it ran: the rest are not said to have never started."""
    from qshpc.cli.jobs import _counts

    meta = {"state": "DAMAGED", "task_counts": {"SUCCEEDED": 4, "FAILED": 0},
            "tasks_stopped": 0, "tasks_submitted": 12}  # fmt: skip
    assert _counts(meta) == "4 done"
    assert _counts({**meta, "state": "FAILED"}) == "4 done, 8 never started"


def test_staging_still_leaves_out_venvs_nested_or_linked_and_keeps_every_file(
    tmp_path: Path,
) -> None:
    """Only folders are looked at for pyvenv.cfg now (a file was stat'ed for one too): a
    venv in a subfolder, a link to a venv, and a file named like one are as before."""
    from qshpc.submit.staging import stage, staged_size

    src = tmp_path / "work"
    (src / "sub" / "env").mkdir(parents=True)
    (src / "sub" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / "sub" / "data.txt").write_text("abc")
    (src / "pyvenv.cfg.txt").write_text("a file, not a venv")
    (src / "prog.py").write_text("x = 1\n")
    outside = tmp_path / "venv"
    outside.mkdir()
    (outside / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (src / "linked").symlink_to(outside)
    dest = tmp_path / "staged"
    stage(src, dest)
    staged = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert staged == ["prog.py", "pyvenv.cfg.txt", "sub", "sub/data.txt"]
    assert staged_size(src) == len("x = 1\n") + 3 + len("a file, not a venv")


def _world_writable(tmp_path: Path) -> Path:
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    return ww


PROGRAM = "from qshpc import distribute_task, get\n@distribute_task()\ndef f(x):\n    return x\nget(f(1))\n"


def test_a_cache_folder_refused_names_where_it_was_set(tmp_path: Path) -> None:
    """A folder from $QSHPC_CACHE_DIR was answered "choose another --cache-dir", an option
    never given: the fix names the variable and its value, or the option when it was that."""
    import os

    ww = _world_writable(tmp_path)
    prog = tmp_path / "p.py"
    prog.write_text(PROGRAM)
    env = {"QSHPC_CACHE_DIR": str(ww)}
    by_env = run_cli("run", str(prog), "--cache", "--workers", "0", env=env)
    assert by_env.returncode == 2, by_env
    assert f"change $QSHPC_CACHE_DIR={ww} to another folder" in by_env.stderr
    assert "--cache-dir" not in by_env.stderr and "Traceback" not in by_env.stderr
    by_option = run_cli("run", str(prog), "--cache-dir", str(ww), "--workers", "0")
    assert by_option.returncode == 2, by_option
    assert "choose another --cache-dir" in by_option.stderr
    assert "QSHPC_CACHE_DIR" not in by_option.stderr
    # `qshpc cache`: the variable as the default folder, the option over it
    ls = run_cli("cache", "ls", env=env)
    assert ls.returncode == 2 and f"change $QSHPC_CACHE_DIR={ww} to" in ls.stderr, ls
    other = {"QSHPC_CACHE_DIR": str(tmp_path / "elsewhere")}
    ls = run_cli("cache", "ls", "--cache-dir", str(ww), env=other)
    assert ls.returncode == 2 and "choose another --cache-dir" in ls.stderr, ls
    assert os.stat(ww).st_mode & 0o777 == 0o777  # nothing was changed there


def test_a_blank_or_unusable_qshpc_cache_dir_in_qshpc_cache(tmp_path: Path) -> None:
    """`QSHPC_CACHE_DIR=' ' qshpc cache ls` said "--cache-dir is empty" (typer passed the
    variable as the option); blank is unset, as for `qshpc run --cache`. A `~user` of no
    such user names the variable."""
    blank = run_cli("cache", "ls", env={"QSHPC_CACHE_DIR": " "})
    assert blank.returncode == 0 and "no cache at" in blank.stdout, blank
    assert "--cache-dir is empty" not in blank.stderr
    bad = run_cli("cache", "stats", env={"QSHPC_CACHE_DIR": "~nosuchuser-mend24/c"})
    assert bad.returncode == 2 and bad.stderr.startswith("qshpc: error: $QSHPC_CACHE_DIR: "), bad


def test_a_refused_pickle_names_the_ndarray_subclass_it_holds(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """A numpy.char.chararray (an ndarray subclass qshpc has no encoding for) is pickled; its
    refusal said "contains pickled data" and not of what: it names the class, read from the
    pickle's opcodes (nothing unpickled), in the API's, `qshpc result`'s and `qshpc run
    --arguments`'s words."""
    import numpy as np
    import pytest

    from qshpc.store import load_arguments, save_arguments
    from qshpc.store.encoding_blob import PickleRefusedError

    args = tmp_path / "args.h5"
    save_arguments(args, {"names": np.char.array(["ab", "cd"]), "n": 3})
    with pytest.raises(PickleRefusedError, match=r"pickled data \(a numpy\.char\.chararray\)"):
        load_arguments(args)
    kept = load_arguments(args, allow_pickle=True)["names"]
    assert type(kept) is np.char.chararray and kept.tolist() == ["ab", "cd"]
    prog = tmp_path / "p.py"
    prog.write_text(
        "import numpy as np\nfrom qshpc import save_result\n"
        "save_result({'names': np.char.array(['ab', 'cd'])})\n"
    )
    assert run_cli("run", str(prog), "--workers", "0").returncode == 0
    out = run_cli("result", str(job_dir_of(qshpc_home)))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out
    assert "the result holds Python objects (a numpy.char.chararray)" in out.stderr
    assert "--allow-pickle" in out.stderr
    args.chmod(0o620)  # not the user's alone: the file is refused, naming what it pickled
    used = run_cli("run", str(prog), "--arguments", str(args), "--workers", "0")
    assert used.returncode == 2, used
    assert "holds pickled values (objects stored by pickle, here a numpy.char.chararray)" in (
        used.stderr
    )


def test_pickled_class_reads_names_and_never_guesses() -> None:
    import collections
    import pickle

    import numpy as np

    from qshpc.store.encoding_blob import pickle_dumps
    from qshpc.store.pickled import pickled_class

    for proto in (2, 5):
        assert pickled_class(pickle.dumps(np.char.array(["a"]), protocol=proto)) == (
            "numpy.char.chararray"
        )
        assert pickled_class(pickle.dumps(collections.OrderedDict(a=1), protocol=proto)) == (
            "collections.OrderedDict"
        )

    def local() -> object:
        class Here:  # written by value by cloudpickle: no name to give
            pass

        return Here()

    assert pickled_class(pickle_dumps(local())) is None
    assert pickled_class(b"not a pickle") is None
    assert pickled_class(b"") is None


def test_every_view_of_an_ended_job_names_the_calls_it_never_started(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """`qshpc status` and `list` said "0 done, 12 never started"; the watch line (`status
    --watch`, `wait`, LocalClient's progress) and the notebook's card and jobs table said
    "0 tasks done" / "0 done / 12 submitted" of the same job: they agree now."""
    import re

    from qshpc.client.job import open_job
    from qshpc.jobs.progress import format_line, snapshot
    from qshpc.report.card import card_html, jobs_table_html

    prog = tmp_path / "p.py"
    prog.write_text(
        "import time\nfrom qshpc import distribute_task\n"
        "@distribute_task()\ndef f(x):\n    time.sleep(2)\n    return x\n"
        "calls = [f(i) for i in range(12)]\n"  # the program ends without waiting for them
    )
    assert run_cli("run", str(prog), "--workers", "1").returncode == 0
    job = job_dir_of(qshpc_home)
    meta = open_job(job).info()
    never = int(meta["tasks_submitted"]) - sum(meta["task_counts"].values())
    assert never >= 1 and meta["state"] == "SUCCEEDED"
    said = f"{never} never started"
    status = run_cli("status", str(job))
    assert status.returncode == 0 and said in status.stdout, status
    assert said in run_cli("list").stdout
    watched = run_cli("status", "--watch", str(job))
    assert f"tasks done, {said} |" in watched.stdout, watched
    assert f"tasks done, {said}" in format_line(snapshot(meta))
    assert re.search(rf"done / 12 submitted, {said}\b", card_html(meta))
    assert said in jobs_table_html([meta])


FLOATS = """
import json
import os
from pathlib import Path

import numpy as np

from qshpc import distribute_task, get, save_result

HERE = Path(__file__).resolve().parent


@distribute_task()
def mean(x):
    return np.float64(x) / 3


@distribute_task()
def stats(x):
    return {"e": np.float64(x), "l": [np.float64(0.1), 2.0], "f32": np.float32(x)}


@distribute_task()
def flaky(i):
    if (HERE / "fail").exists():
        raise RuntimeError("node hiccup")
    return i


a, s = get([mean(1), stats(2)])
seen = {"a": [type(a).__name__, repr(a)], "e": [type(s["e"]).__name__, repr(s["e"])],
        "l": [type(s["l"][0]).__name__, repr(s["l"])], "f32": type(s["f32"]).__name__}
with open(HERE / "seen.jsonl", "a") as f:
    f.write(json.dumps(seen) + "\\n")
get(flaky(1))
save_result({"a": a, "l": s["l"], "top": [np.float64(0.5)]})
"""


def test_a_resumed_job_gets_numpy_float64_results_as_they_were(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """fid23 noted that after `--resume` a task result that was an np.float64 came back a
    Python float (the store made it one): it is kept one now, in task records and blobs,
    as the other numpy scalars were; the value is the same."""
    import json

    import numpy as np

    from qshpc.client.job import open_job

    prog = tmp_path / "p.py"
    prog.write_text(FLOATS)
    (tmp_path / "fail").write_text("")
    first = run_cli("run", str(prog), "--workers", "1")
    assert first.returncode == 1, first  # flaky failed: the job FAILED, the others stored
    job = job_dir_of(qshpc_home)
    (tmp_path / "fail").unlink()
    again = run_cli("run", "--resume", str(job), "--workers", "1")
    assert again.returncode == 0, again
    assert "2 reused from the store" in again.stdout + again.stderr, again
    live, resumed = (json.loads(x) for x in (tmp_path / "seen.jsonl").read_text().splitlines())
    assert live == resumed, (live, resumed)
    assert live["a"][0] == live["e"][0] == live["l"][0] == "float64" and live["f32"] == "float32"
    result = open_job(job).result()
    assert type(result["a"]) is np.float64 and result["a"] == np.float64(1) / 3
    assert type(result["l"][0]) is np.float64 and type(result["l"][1]) is float
    assert type(result["top"][0]) is np.float64
