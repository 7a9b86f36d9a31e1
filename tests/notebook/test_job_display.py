"""Jobs in Jupyter: the card, a live watch that leaves the kernel free, lists and frames."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from qshpc import LocalClient, Program, list_jobs
from tests.conftest import PROGRAMS
from tests.notebook import nbrun

pytestmark = pytest.mark.mpi

START = f"""
from qshpc import LocalClient, Program, list_jobs
program = Program(title="steps", entrypoint="slow_steps.py", working_dir={str(PROGRAMS)!r})
job = LocalClient(workers=2).run(program, arguments={{"waves": 8}})
"""

WATCH = """
w = job.watch(interval=0.2)
returned_while_running = w.running and job.status() in ("QUEUED", "RUNNING")
print("returned while running:", returned_while_running)
print("final:", w.wait(120), "updates:", w.updates)
"""


def notebook(*cells: str) -> nbformat.NotebookNode:
    return new_notebook(
        cells=[new_code_cell(textwrap.dedent(c).strip()) for c in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def test_watch_updates_a_widget_and_leaves_the_kernel_free(qshpc_home: Path) -> None:
    nb = nbrun.execute(notebook(START, WATCH, "job", "list_jobs()"), PROGRAMS)
    out = nbrun.stdout(nbrun.code_cells(nb)[1])
    assert "returned while running: True" in out
    assert "final: SUCCEEDED" in out
    updates = int(out.split("updates:")[1])
    assert updates >= 2
    view = nbrun.data(nbrun.code_cells(nb)[1], "application/vnd.jupyter.widget-view+json")
    assert view is not None
    values = nbrun.widget_values(nb)
    assert 'data-state="SUCCEEDED"' in values[view["model_id"]]
    assert "32 done / 32 submitted" in values[view["model_id"]]  # 8 waves of 4 tasks
    assert 'data-state="SUCCEEDED"' in nbrun.data(nbrun.code_cells(nb)[2], "text/html")
    table = nbrun.data(nbrun.code_cells(nb)[3], "text/html")
    assert 'class="qshpc-jobs" data-jobs="1"' in table and "SUCCEEDED" in table


def test_watch_without_ipywidgets_updates_the_display(qshpc_home: Path) -> None:
    hide = "import sys\nsys.modules['ipywidgets'] = None  # as if it were not installed"
    nb = nbrun.execute(notebook(hide, START, WATCH), PROGRAMS)
    cell = nbrun.code_cells(nb)[2]
    assert "final: SUCCEEDED" in nbrun.stdout(cell)
    html = nbrun.data(cell, "text/html")  # updated in place by its display id
    assert html is not None and 'data-state="SUCCEEDED"' in html
    assert nbrun.data(cell, "application/vnd.jupyter.widget-view+json") is None
    # review26: read as text, the card was `<IPython.core.display.HTML object>`
    text = nbrun.data(cell, "text/plain")
    assert text is not None and "SUCCEEDED" in text and "HTML object" not in text, text


def test_card_list_and_frames_from_python(qshpc_home: Path) -> None:
    program = Program(title="mix", entrypoint="report_mix.py", working_dir=str(PROGRAMS))
    job = LocalClient(workers=2).run(program)
    assert job.wait(timeout=120) == "SUCCEEDED"
    assert repr(job) == f"<Job | {job.job_id}>" and "\n" not in repr(job)
    html = job._repr_html_()
    assert 'data-state="SUCCEEDED"' in html and "15 done / 16 submitted, 1 failed" in html
    frame = job.tasks(as_frame=True)
    assert len(frame) == 19 and list(frame.columns[:6]) == [
        "task_id", "function", "state", "attempt", "rank", "host"]  # fmt: skip
    assert (frame["state"] == "FAILED").sum() == 4
    assert set(frame["function"]) == {"square", "flaky", "broken"}
    assert frame["wall"].min() >= 0 and str(frame["start"].dtype).startswith("datetime64")
    assert frame.loc[frame["attempt"] == 2, "state"].eq("SUCCEEDED").all()
    same = job.tasks().to_pandas()
    assert sorted(same["task_id"]) == sorted(frame["task_id"])
    jobs = list_jobs()
    assert len(jobs) == 1 and 'data-jobs="1"' in jobs._repr_html_()
    table = jobs.to_pandas()
    assert table.loc[0, "state"] == "SUCCEEDED" and table.loc[0, "done"] == 15
    assert table.loc[0, "failed"] == 1


def test_a_clear_message_without_pandas(qshpc_home: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["pandas"] = None
        from qshpc import LocalClient, Program, UserError
        job = LocalClient(workers=0).run(Program(title="s", entrypoint="squares.py",
                                                 working_dir={str(PROGRAMS)!r}), arguments={{"n": 3}})
        job.wait(120)
        try:
            job.tasks(as_frame=True)
        except UserError as exc:
            print("UserError:", exc)
        print(len(job.tasks()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert "UserError: pandas is not installed" in out.stdout, out.stderr
    assert "pip install 'qshpc[notebook]'" in out.stdout


def test_an_unreadable_job_shows_its_error(qshpc_home: Path, tmp_path: Path) -> None:
    from qshpc import Job

    # a damaged store is a state of its own (issue 17): the card says what is wrong
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "job.h5").write_bytes(b"not hdf5")
    html = Job(damaged)._repr_html_()
    assert 'data-state="DAMAGED"' in html and "is damaged" in html
    # a job.h5 that is not a file cannot be read at all: the display says so, never raises
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "job.h5").mkdir()
    html = Job(broken)._repr_html_()
    assert 'data-state="UNREADABLE"' in html and "cannot be read" in html
