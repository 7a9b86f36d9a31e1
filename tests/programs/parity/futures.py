"""Point 8: TaskRefs are futures: concurrent.futures, asyncio and qshpc.as_completed accept them."""

import asyncio
import concurrent.futures as cf
import time

from qshpc import as_completed, distribute_task, get, save_result


@distribute_task()
def square(x):
    return x * x


@distribute_task()
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


refs = [square(i) for i in range(8)]
out = {"is_future": all(isinstance(r, cf.Future) for r in refs)}
done, not_done = cf.wait(refs, timeout=60)
out["cf_wait"] = [len(done), len(not_done)]
out["cf_as_completed"] = sorted(r.result() for r in cf.as_completed(refs, timeout=60))
first, _ = cf.wait([sleepy(0.5), square(3)], return_when=cf.FIRST_COMPLETED, timeout=60)
out["first_completed"] = len(first) >= 1
out["qshpc_as_completed"] = sorted(
    get(list(as_completed([square(i) for i in range(6)], timeout=60)))
)
try:
    list(as_completed([sleepy(3)], timeout=0.2))
    out["timeout"] = "no timeout"
except TimeoutError as exc:
    out["timeout"] = str(exc)
called = []
r = square(9)
r.add_done_callback(lambda f: called.append(f.result()))
get(r)
out["callback"] = called


async def main():
    a = await square(4)
    b = await asyncio.wrap_future(square(5))
    c = await asyncio.gather(*[square(i) for i in range(3)])
    return [a, b, c]


out["asyncio"] = asyncio.run(main())
save_result(out)
