"""Worker rank 1 kills itself (SIGKILL, as the OOM killer does) in the middle of the job."""

import os
import signal
import time

from qshpc import distribute_task, get, rank_info, save_result


@distribute_task()
def work(i):
    if i >= 12 and rank_info().rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.02)
    return i


refs = [work(i) for i in range(6)]
get(refs)  # these finish before the crash
save_result(get([work(i) for i in range(6, 60)]))
