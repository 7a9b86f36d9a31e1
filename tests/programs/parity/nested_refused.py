"""Point 4, the other half: a reference that cannot resolve is refused with a clear error."""

from qshpc import UserError, distribute_task, get, put, save_result


@distribute_task()
def leak():
    return put("placed on a worker")  # the object stays on that worker


@distribute_task()
def read(c):
    return get(c[0])


errors = {}
ref = get(leak())
try:
    get(ref)
except UserError as exc:
    errors["get"] = str(exc)
try:
    read([ref])
except UserError as exc:
    errors["call"] = str(exc)
save_result(errors)
