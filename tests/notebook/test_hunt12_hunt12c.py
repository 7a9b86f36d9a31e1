"""hunt12c: a job (or a map array) started from a notebook outlives an interrupt or a restart of its kernel.

Jupyter interrupts a kernel with SIGINT and restarts it with SIGTERM, both to the
kernel's whole process group: a launcher LocalClient started in that group was
cancelled with them ("job cancelled: received SIGINT"), where a quantum-serverless
job runs on in its gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from tests.conftest import PROGRAMS

pytestmark = pytest.mark.mpi

START = (
    "from qshpc import LocalClient, Program\n"
    "program = Program(title='steps', entrypoint='slow_steps.py', working_dir='.')\n"
    "job = LocalClient(workers=2).run(program, arguments={'waves': 25})\n"
    "print(job.job_id)"
)


def held(gate: Path) -> str:
    """START, its waves after the first waiting for ``gate``, which the test creates once it
    checked the job runs on (was 25 waves of 0.2 s tasks, ~10 s, to outlast the checks).
    The first wave runs: the store says RUNNING from its first commit on."""
    return START.replace("{'waves': 25}", f"{{'waves': 25, 'gate': {str(gate)!r}, 'hold': 1}}")


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate"


@pytest.fixture
def kernel(qshpc_home: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(PROGRAMS))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: BlockingKernelClient, code: str, timeout: float = 120) -> str:
    """What ``code`` printed or returned in the kernel; an error as ``ERROR Name: text``."""
    msg_id = kc.execute(code)
    out: list[str] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "execute_result":
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            out.append(f"ERROR {content['ename']}: {content['evalue']}")
            out.extend(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


def interrupted(km: KernelManager, kc: BlockingKernelClient, code: str) -> dict[str, Any]:
    """Once ``job`` is RUNNING, run ``code``, interrupt the kernel 3 s later; the cell's
    reply (after it, the kernel takes new cells: one sent before would be aborted with the
    interrupted one). The wait for RUNNING: under load (10 on 2 cores) the job's store
    still said QUEUED 3 s after the start, and the message said 'left QUEUED'."""
    run(kc, "import time\nwhile job.status() != 'RUNNING': time.sleep(0.1)", timeout=60)
    msg_id = kc.execute(code)
    time.sleep(3)
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


def test_interrupting_result_leaves_the_job_running(
    kernel: tuple[KernelManager, BlockingKernelClient], gate: Path
) -> None:
    km, kc = kernel
    job_id = run(kc, held(gate)).strip()
    assert interrupted(km, kc, "r = job.result()")["ename"] == "KeyboardInterrupt"
    out = run(kc, "print(job.status(), job.info().get('error'))")
    assert out.split() == ["RUNNING", "None"], out
    gate.touch()
    assert run(kc, "print(job.result(timeout=100)['steps'], job.status())").split() == [
        "100", "SUCCEEDED"]  # fmt: skip
    assert job_id


def test_the_interrupt_says_the_job_runs_on(
    kernel: tuple[KernelManager, BlockingKernelClient], gate: Path
) -> None:
    km, kc = kernel
    run(kc, held(gate))  # never opened: job.stop() cancels it
    reply = interrupted(km, kc, "r = job.result()")
    assert reply["ename"] == "KeyboardInterrupt"
    text = "\n".join(reply["traceback"])
    assert "was left RUNNING: job.result() waits again, job.stop() cancels it" in text
    assert run(kc, "print(job.stop()); print(job.wait(60))").split() == ["True", "CANCELED"]


def test_an_interrupted_watch_wait_waits_again(
    kernel: tuple[KernelManager, BlockingKernelClient], gate: Path
) -> None:
    """review32 F1: after an interrupt of `w.wait()` (CPython 3.11's Thread.join), the next
    `w.wait()` returned 'RUNNING' at once and `w.running` was False while the watch ran on;
    the interrupt said nothing."""
    km, kc = kernel
    run(kc, held(gate))
    run(kc, "w = job.watch(interval=0.2)")
    reply = interrupted(km, kc, "w.wait()")
    assert reply["ename"] == "KeyboardInterrupt"
    assert "still watched: w.wait() waits again, w.stop() stops watching" in reply["evalue"]
    assert run(kc, "print(w.running, job.status())").split() == ["True", "RUNNING"]
    gate.touch()
    assert run(kc, "print(w.wait(100), w.running)").split() == ["SUCCEEDED", "False"]


def test_a_kernel_restart_leaves_the_job_to_find_again(
    kernel: tuple[KernelManager, BlockingKernelClient], gate: Path
) -> None:
    km, kc = kernel
    job_id = run(kc, held(gate)).strip()
    run(kc, "array = LocalClient(workers=1).map(program, [{'waves': 3}] * 2, parallel=1)")
    time.sleep(2)
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=60)
    found = run(
        kc,
        "from qshpc import LocalClient\nclient = LocalClient()\n"
        f"listed = [j.job_id for j in client.jobs()]\njob = client.get_job_by_id({job_id!r})\n"
        "print(len(listed), job.job_id in listed, job.status())",
    )
    assert found.split() == ["3", "True", "RUNNING"], found
    gate.touch()
    assert run(kc, "print(job.result(timeout=100)['steps'])").strip() == "100"
    states = run(kc, "print(*[j.wait(100) for j in client.jobs() if j.job_id != job.job_id])")
    assert states.split() == ["SUCCEEDED"] * 2, states  # the array's driver ran on too


@pytest.mark.parametrize("widgets", [True, False])
def test_a_watch_waited_on_in_a_later_cell_is_saved_final(widgets: bool) -> None:
    """A notebook executed headless (nbclient, as nbconvert and papermill do) stops listening
    to a cell when it ends: the watch's updates, sent for the cell that started it, were
    lost, and the saved card said QUEUED after `w.wait()` returned SUCCEEDED."""
    from tests.notebook import nbrun
    from tests.notebook.test_job_display import notebook

    hide = "" if widgets else "import sys\nsys.modules['ipywidgets'] = None"
    nb = nbrun.execute(
        notebook(hide, START.replace("25", "3"), "w = job.watch(interval=0.2)", "w.wait(60)"),
        PROGRAMS,
    )
    cells = nbrun.code_cells(nb)
    assert nbrun.value(cells[3]) == "SUCCEEDED"
    if widgets:
        view = nbrun.data(cells[2], "application/vnd.jupyter.widget-view+json")
        card = nbrun.widget_values(nb)[view["model_id"]]
    else:
        card = nbrun.data(cells[2], "text/html")
    assert 'data-state="SUCCEEDED"' in card and "12 done / 12 submitted" in card, card
