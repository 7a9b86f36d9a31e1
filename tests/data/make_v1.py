"""Write the frozen schema-v1 job file ``tests/data/v1/job.h5`` (run once; commit the file).

Usage: python tests/data/make_v1.py

tests/unit/test_store_job.py reads it back forever; never regenerate it for a
released schema version, add ``v2/`` instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from qiskit import QuantumCircuit

from qshpc.store import JobWriter, TaskRecord, create_job

OUT = Path(__file__).parent / "v1"


def bell() -> QuantumCircuit:
    """The circuit stored in the arguments."""
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def main() -> None:
    tmp = OUT.with_name("v1-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "id": "frozen-v1",
        "title": "frozen v1 job",
        "entrypoint": "program.py",
        "working_dir": "/home/user/prog",
        "created": 1700000000.0,
        "seed": 42,
        "qshpc_version": "0.1.0",
        "slurm": {"job_id": "123", "partition": "debug"},
    }
    arguments = {
        "circuits": [bell()],
        "shots": 1024,
        "thetas": np.linspace(0, 1, 5),
        "opts": {0: "a"},
    }
    create_job(tmp, meta, arguments)
    runtime = {
        "mpi_size": 2,
        "ranks": [
            {"rank": 0, "host": "node-a", "pid": 10, "local_rank": 0, "cpus": 2},
            {"rank": 1, "host": "node-a", "pid": 11, "local_rank": 1, "cpus": 2},
        ],
        "started": 1700000001.0,
        "qiskit_version": "2.6.0",
        "qiskit_aer_version": None,
        "python": "3.11.7",
        "slurm": None,
        "resume": False,
    }
    w = JobWriter.open(tmp, runtime)
    for i in range(3):
        w.append_task(
            TaskRecord(
                task_id=str(i),
                key=f"{i:064x}",
                function="program.run",
                state="SUCCEEDED",
                attempt=1,
                rank=1,
                host="node-a",
                submitted=1700000002.0 + i,
                started=1700000002.5 + i,
                finished=1700000003.0 + i,
                seed=100 + i,
                result={0: 0.5, 3: 0.5 - i / 10},
                provenance={"shots": 1024},
            )
        )
    w.append_task(
        TaskRecord(
            task_id="3",
            key="k3",
            function="program.run",
            state="FAILED",
            attempt=2,
            rank=1,
            host="node-a",
            submitted=1700000010.0,
            started=1700000010.5,
            finished=1700000011.0,
            error="Traceback ...\nValueError: bad theta",
        )
    )
    w.commit()
    w.set_status("3 of 4 done")
    w.save_result({"energies": np.array([1.0, -0.5]), "best": 1, "label": "é"})
    w.finalize("SUCCEEDED")
    shutil.rmtree(OUT, ignore_errors=True)
    tmp.rename(OUT)


if __name__ == "__main__":
    main()
