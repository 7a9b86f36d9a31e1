"""Memory estimates and the messages of check_fits (pure, no simulation)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from qshpc.aer.sizing import (
    BASE_BYTES,
    GIB,
    OVERHEAD_FACTOR,
    check_fits,
    estimate_for_circuits,
    estimate_memory_bytes,
    state_bytes,
)
from qshpc.errors import ResourceError, UserError


def fake(n: int) -> SimpleNamespace:
    return SimpleNamespace(num_qubits=n)


def test_state_sizes() -> None:
    assert state_bytes(34) == 256 * GIB
    assert state_bytes(34, precision="single") == 128 * GIB
    assert state_bytes(10, "density_matrix") == 16 * 4**10
    assert state_bytes(0) == 16
    assert state_bytes(50, "matrix_product_state") < GIB
    with pytest.raises(UserError):
        state_bytes(3, "nope")
    with pytest.raises(UserError):
        state_bytes(3, precision="half")


def test_estimate_has_overhead() -> None:
    assert estimate_memory_bytes(20) == round(16 * 2**20 * OVERHEAD_FACTOR) + BASE_BYTES
    est = estimate_for_circuits([fake(3), fake(30), fake(12)], device="gpu")
    assert (est.num_qubits, est.device, est.method) == (30, "GPU", "statevector")
    assert est.state_bytes == 16 * GIB
    assert est.bytes == estimate_memory_bytes(30)


def test_check_fits_passes_and_returns_estimate() -> None:
    assert check_fits([fake(20)], mem_gb=4).num_qubits == 20


def test_check_fits_message() -> None:
    with pytest.raises(ResourceError) as err:
        check_fits([fake(34)], mem_gb=64)
    msg = str(err.value)
    assert msg.startswith("a 34-qubit statevector needs 256.0 GiB (double precision;")
    assert "the job asked for 64 GiB per rank" in msg
    assert f"--mem-gb >= {int(-(-estimate_memory_bytes(34) // GIB))}" in msg
    assert "precision='single' (still 142 GiB)" in msg
    assert "method='matrix_product_state'" in msg


def test_single_precision_hint_when_it_fits() -> None:
    with pytest.raises(ResourceError, match=r"use precision='single', or"):
        check_fits(fake(30), mem_gb=12)
    assert check_fits(fake(30), mem_gb=12, precision="single").precision == "single"
    assert isinstance(check_fits(fake(34), mem_gb=8, method="matrix_product_state").bytes, int)


def test_density_matrix_message() -> None:
    with pytest.raises(ResourceError, match=r"a 20-qubit density_matrix needs 16384\.0 GiB"):
        check_fits(fake(20), mem_gb=64, method="density_matrix")
