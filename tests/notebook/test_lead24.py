"""Session 24, lead: a job watch typed again in a later cell shows the card there too
(review32 F10: nothing showed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from tests.conftest import PROGRAMS

pytestmark = pytest.mark.mpi


@pytest.fixture
def kernel(qshpc_home: Path) -> Iterator[BlockingKernelClient]:
    km: KernelManager
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(PROGRAMS))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def displays(kc: BlockingKernelClient, code: str, timeout: float = 120) -> list[str]:
    """The MIME types of what ``code``'s cell displayed (display_data and execute_result)."""
    msg_id = kc.execute(code)
    kinds: list[str] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("display_data", "execute_result"):
            kinds.extend(sorted(content["data"]))
        elif kind == "error":
            raise AssertionError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return kinds


def start_steps_job(kc: BlockingKernelClient, widgets: bool, then: str = "") -> None:
    """Run slow_steps.py (2 waves) as ``job`` in the kernel (``widgets``: with ipywidgets,
    else as without it), then the code ``then`` in the same cell."""
    if not widgets:  # the display without ipywidgets: one display, updated in place
        displays(kc, "import sys; sys.modules['ipywidgets'] = None")
    displays(
        kc,
        "from qshpc import LocalClient, Program\n"
        "job = LocalClient(workers=1).run(Program(title='steps', entrypoint='slow_steps.py',"
        f" working_dir='.'), arguments={{'waves': 2}})\n{then}",
    )


@pytest.mark.parametrize("widgets", [True, False])
def test_a_watch_shown_again_in_a_later_cell_shows_the_card(
    kernel: BlockingKernelClient, widgets: bool
) -> None:
    kc = kernel
    start_steps_job(kc, widgets, "w = job.watch(interval=0.2)")
    first = displays(kc, "w")
    again = displays(kc, "w")
    want = "application/vnd.jupyter.widget-view+json" if widgets else "text/html"
    assert want in first and want in again, (first, again)
    assert displays(kc, "print(w.wait(100))") == []
