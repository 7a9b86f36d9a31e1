"""The program API in one process (no runtime): refs behave like futures, errors are clear."""

from __future__ import annotations

import pytest

from qshpc import ObjectRef, TaskError, TaskRef, current_task, distribute_task, get, put, wait
from qshpc.errors import ResourceError, UserError
from qshpc.program.resources import Target


@distribute_task()
def double(x: int) -> int:
    return 2 * x


@distribute_task(retries=2)
def flaky(state: list[int]) -> int:
    state.append(1)  # each attempt takes the call's arguments afresh, as on a worker
    ctx = current_task()
    assert ctx is not None
    if ctx.attempt < 3:
        raise RuntimeError("not yet")
    return len(state)


@distribute_task()
def fails() -> None:
    raise KeyError("missing")


def test_call_returns_ref_and_get_returns_in_order() -> None:
    refs = [double(i) for i in range(5)]
    assert all(isinstance(r, TaskRef) for r in refs)
    assert get(refs) == [0, 2, 4, 6, 8]
    assert refs[0].done() and refs[1].result() == 2 and refs[2].exception() is None


def test_task_error_carries_context() -> None:
    ref = fails()
    with pytest.raises(TaskError) as info:
        get(ref)
    err = info.value
    assert err.function == "fails" and err.rank == 0 and err.host
    assert "KeyError: 'missing'" in err.remote_traceback
    assert "task " in str(err) and "failed on rank 0" in str(err)
    assert isinstance(ref.exception(), TaskError)


def test_retries() -> None:
    assert get(flaky([])) == 1


def test_put_and_nested_refs() -> None:
    obj = put({"a": 1})
    assert isinstance(obj, ObjectRef)
    assert get(obj) == {"a": 1}

    @distribute_task()
    def read(d: dict[str, int], k: str) -> int:
        return d[k]

    assert get(read(obj, "a")) == 1
    assert get(double(double(3))) == 12  # a TaskRef as an argument


def test_wait() -> None:
    refs = [double(i) for i in range(4)]
    done, pending = wait(refs, num_returns=4, timeout=5)
    assert len(done) == 4 and pending == []
    with pytest.raises(UserError):
        wait(refs, num_returns=0)


def test_target_validation() -> None:
    assert Target.from_any({"cpu": 2, "gpu": 1, "mem": 4}) == Target(2, 1, mem=4.0)
    with pytest.raises(ResourceError, match=r"unknown resource 'cpus'.*Valid keys: cpu"):
        distribute_task(target={"cpus": 2})
    with pytest.raises(ResourceError, match="must be >= 0"):
        distribute_task(target={"mem": -1})
    with pytest.raises(ResourceError, match="not a number"):
        distribute_task(target={"gpu": "one"})
    with pytest.raises(UserError, match="retries"):
        distribute_task(retries=-1)


def test_get_rejects_non_refs() -> None:
    with pytest.raises(UserError, match="task reference"):
        get(42)  # type: ignore[call-overload]


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, qshpc\n"
        "from qshpc import distribute_task, get, save_result, get_arguments\n"
        "heavy = [m for m in ('qiskit', 'qiskit_aer', 'h5py', 'mpi4py', 'submitit') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_memory_target_refuses_circuits_that_cannot_fit() -> None:
    from qiskit import QuantumCircuit

    @distribute_task(target={"mem": 1})
    def simulate(circuit: QuantumCircuit) -> int:
        return circuit.num_qubits

    wide = QuantumCircuit(34)
    wide.h(range(34))  # sized by the qubits it acts on: an empty circuit is 0 qubits
    assert get(simulate(QuantumCircuit(10))) == 10
    with pytest.raises(ResourceError, match=r"34-qubit statevector needs 256\.0 GiB"):
        simulate(wide)


def test_bare_decorator_is_a_task_with_the_default_target() -> None:
    """``@distribute_task`` without parentheses (Ray's ``@ray.remote`` form) said
    "target must be a dict..., got function" (0ab3ff4, hunt10b): it is the same task
    as ``@distribute_task()``, its options keyword-only as before."""

    @distribute_task
    def square(x: int) -> int:
        return x * x

    assert get([square(i) for i in range(4)]) == [0, 1, 4, 9]
    assert square.name.endswith("square") and square.target == Target()
    with pytest.raises(ResourceError):
        distribute_task(3)  # type: ignore[call-overload]
