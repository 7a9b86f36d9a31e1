"""Worker rank 1 is killed (SIGKILL) in the middle of the first run only (DIES_MARK: a file
made at the kill); a resumed run then finishes."""

import os
import signal
import time
from pathlib import Path

from qshpc import distribute_task, get, rank_info, save_result

MARK = Path(os.environ["DIES_MARK"])


@distribute_task()
def work(i):
    if i >= 12 and rank_info().rank == 1 and not MARK.exists():
        MARK.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return i


get([work(i) for i in range(6)])
save_result(sum(get([work(i) for i in range(6, 60)])))
