"""Child process for test_concurrency: takes a job's lock again and again, logging its turns.

Usage: python lock_child.py JOB_DIR LOG ROUNDS

Each round: try the lock until it is ours, write ``enter PID`` to LOG, hold it
a few ms, write ``leave PID``, release it. Two ``enter`` lines in a row in LOG
would mean two holders at once.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from qshpc.store.lock import JobLock, JobLockedError


def main() -> None:
    job_dir, log, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    pid = os.getpid()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    done = 0
    while done < rounds:
        lock = JobLock(job_dir, "lock_child")
        try:
            lock.acquire()
        except JobLockedError:
            time.sleep(0.002)
            continue
        os.write(fd, f"enter {pid}\n".encode())
        time.sleep(0.005)
        os.write(fd, f"leave {pid}\n".encode())
        lock.release()
        done += 1
    os.close(fd)


if __name__ == "__main__":
    main()
