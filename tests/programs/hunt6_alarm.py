"""A task sets a timeout with signal.alarm and forgets to cancel it; the program leaves one armed."""

import signal
import time

from qshpc import distribute_task, get, save_result


def on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("too slow")


@distribute_task()
def f(i: int) -> int:
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(1)  # a timeout the task forgets to cancel
    return i


first = get([f(i) for i in range(4)])
time.sleep(2.5)  # the workers' alarms are due while they wait for work
second = get([f(i) for i in range(4)])
save_result({"r": first + second})
signal.signal(signal.SIGALRM, lambda signum, frame: None)
signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)  # still firing as rank 0 ends
