"""Point 2: ``wait(refs, num_returns=k)`` returns exactly k ready (fewer only on timeout), in input order."""

import time

from qshpc import distribute_task, get, save_result, wait


@distribute_task()
def quick(i):
    return i


@distribute_task()
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def ids(refs):
    return [r.task_id for r in refs]


refs = [quick(i) for i in range(5)]
get(refs)  # all five are done
done, pending = wait(refs, num_returns=3)
exact = {"done": ids(done) == ids(refs[:3]), "pending": ids(pending) == ids(refs[3:])}

counts = []
left = refs
while left:
    done_k, left = wait(left, num_returns=min(2, len(left)))
    counts.append(len(done_k))

fast = [quick(10), quick(11)]
get(fast)  # done before the slow one starts (a call queued behind it would wait for it)
slow = sleepy(2.0)
t0 = time.monotonic()
done0, pending0 = wait([slow], num_returns=1, timeout=0)
waited0 = time.monotonic() - t0
done_m, pending_m = wait([slow, *fast], num_returns=2, timeout=30)
done_t, pending_t = wait([slow, fast[0]], num_returns=2, timeout=0.2)  # timeout: fewer than asked
both, none = wait([*fast], num_returns=2, timeout=0)
get(slow)
save_result(
    {
        "exact": exact,
        "counts": counts,
        "timeout0": [len(done0), len(pending0)],
        "waited0": waited0,
        "mixed": [ids(done_m) == ids(fast), ids(pending_m) == ids([slow])],
        "timed_out": [ids(done_t) == ids(fast[:1]), ids(pending_t) == ids([slow])],
        "both": [len(both), len(none)],
    }
)
