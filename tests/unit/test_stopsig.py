"""A rank remembers SIGINT/SIGTERM from its first line (qshpc.runtime.stopsig)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_PROBE = """
import json, signal, sys
before = set(sys.modules)
from qshpc.runtime.stopsig import defer_if_rank
defer_if_rank(["qshpc", "run", "p.py"])
new = sorted(set(sys.modules) - before)
handler = signal.getsignal(signal.SIGINT)
cancel = None
if handler is not signal.default_int_handler:
    signal.raise_signal(signal.SIGINT)  # remembered, not raised
    from qshpc.runtime import program_main
    cancel = program_main.cancel_signal()
print(json.dumps({"handler": getattr(handler, "__name__", str(handler)), "cancel": cancel,
                  "new": new}))
"""


def _probe(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return seen


def test_a_rank_remembers_a_signal_before_it_imports_anything_else() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "PMIX"))}
    seen = _probe({**env, "PMI_RANK": "1", "PMI_SIZE": "3"})
    assert seen["handler"] == "remember"
    assert seen["cancel"] == 2  # the SIGINT, as rank 0 and the workers read it later
    # nothing but the package, its two tiny helpers, the runtime package and
    # this module came before the handler (no socket, runpy, threading, qiskit...)
    qshpc = {"qshpc", "qshpc._lazy", "qshpc._version", "qshpc.runtime", "qshpc.runtime.stopsig"}
    others = [m for m in seen["new"] if m not in qshpc and not m.startswith(("typing", "_typing"))]
    assert others == [], others
    plain = _probe(env)  # not a rank: Python's own handling stays
    assert plain["handler"] == "default_int_handler"
    assert plain["cancel"] is None
