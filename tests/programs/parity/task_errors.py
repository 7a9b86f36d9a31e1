"""Point 5: a task's exception is caught by its own class around get, with TaskError's context."""

from qshpc import TaskError, distribute_task, get, save_result


class ProgramError(Exception):
    """An exception class defined in the program file, with a constructor of its own."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code


class Final(Exception):
    """Refuses subclasses: its TaskError stays a plain TaskError."""

    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")


@distribute_task()
def bad(kind):
    if kind == "value":
        raise ValueError("bad value")
    if kind == "key":
        raise KeyError("missing")
    if kind == "program":
        raise ProgramError(7, "from the program file")
    if kind == "os":
        raise FileNotFoundError(2, "No such file", "/nowhere")
    if kind == "final":
        raise Final("final")
    return kind


@distribute_task()
def outer():
    return get(bad("value"))  # a nested task's error, not caught


seen = {}
try:
    get(bad("value"))
except ValueError as exc:
    seen["value"] = {
        "task_error": isinstance(exc, TaskError),
        "fields": [exc.task_id, exc.function, exc.rank >= 0, bool(exc.host)],
        "traceback": "ValueError: bad value" in exc.remote_traceback,
        "message": "failed on rank" in str(exc),
    }
try:
    get(bad("key"))
except KeyError as exc:
    seen["key"] = exc.args[0]
try:
    get(bad("program"))
except ProgramError as exc:
    seen["program"] = [exc.code, isinstance(exc, TaskError)]
try:
    get(bad("os"))
except FileNotFoundError as exc:
    seen["os"] = [exc.errno, exc.filename]
except OSError as exc:  # pragma: no cover - reported below
    seen["os"] = ["OSError only", str(exc)]
try:
    get(bad("final"))
except Final:  # pragma: no cover - cannot be a Final
    seen["final"] = "subclassed"
except TaskError as exc:
    seen["final"] = exc.exc_type
try:
    get(outer())
except ValueError as exc:
    seen["nested"] = isinstance(exc, TaskError)
try:
    get([bad("fine"), bad("value")])
except ValueError:
    seen["list"] = True
ref = bad("value")
try:
    ref.result()
except ValueError:
    seen["result"] = isinstance(ref.exception(), ValueError)
save_result(seen)
