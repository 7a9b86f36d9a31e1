"""Session 26, fix42e: ``job.watch()`` as a cell's last line shows one card, not two
(review44 F5: the seed notebooks end a cell so; nbclient recorded two widget outputs)."""

from __future__ import annotations

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.notebook.test_lead24 import displays, kernel, start_steps_job  # noqa: F401

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("widgets", [True, False])
def test_a_watch_as_a_cells_value_shows_one_card(
    kernel: BlockingKernelClient,  # noqa: F811
    widgets: bool,
) -> None:
    kc = kernel
    start_steps_job(kc, widgets)
    want = "application/vnd.jupyter.widget-view+json" if widgets else "text/html"
    shown = displays(kc, "job.watch(interval=0.2)")  # as seed_notebook.ipynb's cell ends
    assert shown.count(want) == 1, shown  # was 2: watch() showed it, then its value again
    again = displays(kc, "_")  # the watch typed again in a later cell: shown there (review32)
    assert again.count(want) == 1, again
    assert displays(kc, "print(_.wait(100))") == []
