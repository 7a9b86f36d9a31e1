"""Every point program of issue 14 in one job (tests/mpi/test_parity.py), to keep the suite cheap.

Each point program runs as it would alone (``runpy``, as ``__main__``, with its
own arguments); what it passes to ``save_result`` is kept under its name, and
this job saves them all together. A point that raises is kept as its traceback,
so the other points still run and their tests still speak.
"""

import runpy
import traceback
from pathlib import Path

import qshpc

HERE = Path(__file__).resolve().parent
POINTS = {  # file: its arguments (futures last: it leaves a 3 s call running)
    "refs_by_status.py": {},
    "wait_exact.py": {},
    "objectref_ready.py": {},
    "nested_refs.py": {"rounds": 3, "per_round": 6},
    "nested_refused.py": {},
    "task_errors.py": {},
    "target_cpu.py": {"big": 64},
    "futures.py": {},
}

save_result, get_arguments = qshpc.save_result, qshpc.get_arguments
results = {}
for name, arguments in POINTS.items():
    saved = []
    qshpc.save_result = lambda value, saved=saved: saved.append(value) or True
    qshpc.get_arguments = lambda arguments=arguments: dict(arguments)
    try:
        runpy.run_path(str(HERE / name), run_name="__main__")
        results[name] = saved[-1] if saved else {"error": "nothing saved"}
    except BaseException:
        results[name] = {"error": traceback.format_exc()}
    finally:
        qshpc.save_result, qshpc.get_arguments = save_result, get_arguments
save_result(results)
