"""The program and its tasks replace or close stdout/stderr; argv[1] says how the program ends."""

import io
import sys

from qshpc import distribute_task, get, save_result


@distribute_task()
def quiet(i: int) -> int:
    sys.stdout = io.StringIO()
    sys.stderr = None  # type: ignore[assignment]
    return i


results = get([quiet(i) for i in range(6)])
how = sys.argv[1]
if how == "replace":
    sys.stdout = io.StringIO()
    sys.stderr = None  # type: ignore[assignment]
else:
    sys.stdout.close()
    sys.stderr.close()
save_result({"r": results})
raise ValueError(f"the program's own error after it {how}d its streams")
