"""A rank's BLAS threads: its own cores, set before numpy loads OpenBLAS.

numpy's OpenBLAS starts one thread per core of the machine when numpy is
imported, and those threads spin before they sleep: 50-100 ms of CPU a
process on 2 cores for a process that never multiplies a matrix. Every rank
of a job imports numpy at once, so on a node where ranks share the cores
(the default local shape: 3 ranks on 2 cores) the spinning is CPU taken from
the ranks that are importing qiskit, and on a 64-core node with 64 ranks it
is 64 x 63 threads. Each rank therefore gets as many BLAS threads as it has
cores (``rank_info().cpus``), as Aer gets its ``max_parallel_threads``.

A thread count the user set (``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``,
``OMP_NUM_THREADS``, which OpenBLAS also reads, or ``MKL_NUM_THREADS``) is
left alone, and so is a process that has already loaded numpy (too late to
matter). Programs and tasks see the variables, as processes they start do.
"""

from __future__ import annotations

import os
import sys

#: Variables OpenBLAS (in its order) or MKL read for their thread count.
USER_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(cpus: int) -> bool:
    """Give numpy's BLAS ``cpus`` threads unless the user chose; True when set here."""
    if cpus < 1 or "numpy" in sys.modules or any(os.environ.get(v) for v in USER_VARS):
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = str(cpus)
    os.environ["MKL_NUM_THREADS"] = str(cpus)
    return True


__all__ = ["USER_VARS", "limit_blas_threads"]
