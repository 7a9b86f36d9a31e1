"""Tasks that each receive and return a few MB, so that data must cross between nodes.

Arguments: ``n`` tasks (default 8), ``mb`` megabytes each way per task (default 4).
Each task records where it ran and how many bytes it got and sent back; the
result lists them, so a test can compare with the nodes' interface counters.
"""

import hashlib
import os

from qshpc import distribute_task, get, get_arguments, rank_info, save_result


@distribute_task()
def echo(blob: bytes, i: int):
    info = rank_info()
    back = os.urandom(len(blob))  # incompressible, new bytes: nothing to cache
    return {
        "i": i,
        "host": info.host,
        "rank": info.rank,
        "received": len(blob),
        "received_sha256": hashlib.sha256(blob).hexdigest(),
        "blob": back,
    }


args = get_arguments()
n, mb = int(args.get("n", 8)), float(args.get("mb", 4))
size = int(mb * 1024 * 1024)
blobs = [os.urandom(size) for _ in range(n)]
rows = get([echo(b, i) for i, b in enumerate(blobs)])
for b, row in zip(blobs, rows, strict=True):
    # the bytes really made the round trip intact
    assert row["received_sha256"] == hashlib.sha256(b).hexdigest()
    assert len(row.pop("blob")) == size
    row["sent"] = size
save_result({"tasks": rows, "rank0_host": rank_info().host})
