"""The HDF5 job store: one ``job.h5`` per job directory.

Only this package imports h5py; ``import qshpc.store`` itself imports neither
h5py nor qiskit (the classes load on first use, qiskit only for circuits).

Writing: rank 0 is the single writer (:class:`JobWriter`); any process may read
while it runs (:class:`JobReader`, HDF5 file locking off).

Files and modes
    The job directory is created 0700 and its files 0600. With
    ``QSHPC_SHARE_GROUP=1`` in the environment they are 0750 and 0640, so the
    owner's group can read jobs.

Layout of ``job.h5`` (schema version 1)
    Every group and dataset carries ``encoding-type`` and ``encoding-version``
    attrs; the file and its top-level groups carry ``qshpc-schema-version = 1``.
    Opening a file of another schema version raises ``SchemaVersionError``.

    ``/`` attrs
        ``encoding-type = "qshpc-job"``, ``created``, ``job-nonce`` (8 random
        bytes drawn at creation, or at the first run of a job an older qshpc made:
        the writer checks that each ``job.h5`` it reopens is its own); after
        finalize also ``state`` and ``finished``.
    ``/meta``
        create_job's meta dict (id, title, entrypoint, working_dir, created,
        seed, qshpc_version, slurm ...), native encoding.
    ``/arguments``
        the program's arguments, native encoding.
    ``/runs/<n>``
        one per start of the job (1, 2, ... on resume): the runtime dict
        (mpi_size, ranks [{rank, host, pid, start_ticks, local_rank, cpus}], started,
        versions, slurm, resume), native encoding.
    ``/result``
        the saved result, native encoding; written by finalize when its blob
        encoding is at most 1 MiB. A larger result is kept once, as the last
        ``result`` event in ``/log/large``; so is the result while the job
        runs, or if it died.
    ``/log``
        the records and events of every commit folded in so far (by
        ``JobWriter.open`` and ``finalize``); the running writer's later
        commits are in ``job.journal`` (below):

        ``meta``     uint8, gzip 1, 64 KiB chunks: blob-encoded record fields.
        ``data``     uint8, gzip 1, 64 KiB chunks: blob-encoded results and events.
        ``large``    uint8, uncompressed, 1 MiB chunks: blobs over 1 MiB, and task
                     results over 16 KiB that rank 0 records (``rows.RAW_RESULT_MIN``).
        ``records``  compound rows, shuffle + gzip 1: valid, state (0 SUCCEEDED,
                     1 FAILED), where (0 none, 1 data, 2 large), has_seed, run,
                     attempt, rank, seed, submitted, started, finished, off and
                     meta_len (the blob ``[task_id, key, function, host, error,
                     provenance]`` in ``meta``; provenance ``qshpc.inexact``:
                     the result is stored as another type, see
                     :func:`qshpc.store.encoding_blob.encode_blob_noting`;
                     the key is text: qshpc's
                     blake2b-128 keys, 32 hex digits; a 64-hex-digit key, as
                     sha256 keys were, is stored as 32 raw bytes and read back
                     as hex), res_off and res_len (the result blob in
                     ``data`` or ``large``).
        ``events``   compound rows: valid, kind (1 state ``[state, error]``,
                     2 sub-status str, 3 saved result, 4 rank 0's program and
                     its waits ``{"spans": [[t0, t1, kind, n], ...],
                     "submitted": N}``: kind 0 get, 1 wait, 2 program (t1 NaN
                     while it runs), N the tasks the program submitted so far;
                     readers skip kinds they do not know), where, run, time,
                     off, len.
        ``commits``  rows (records, events, meta, data, large, time, check): the
                     length of every log dataset at each fold; readers use the
                     last row whose check matches.

        ``/log`` attr ``folded-journal``: the token of the journal folded in last;
        ``journal-token``: the token of the journal the writer starts after this
        file was written (with the run count and ``folded-journal`` of then: an
        older qshpc's run, which changes them, turns the check off). A journal of
        another token beside it is another's: readers and folds refuse it.

    The job's state is its last state event (QUEUED is written by create_job).
    ``result`` (``/result`` or the last result event) belongs to the latest
    run: a resumed run starts without one.

``job.journal`` (only while a writer runs, or after it was killed)
    An append-only file of commit frames, each holding the rows and bytes that
    continue ``/log`` (format in :mod:`qshpc.store.journal`). Readers read
    ``job.h5`` then the journal's whole frames, unless the journal's token is
    the ``folded-journal`` one. A reader opens the journal once per read and
    reads its frames through that file: a fold meanwhile (``job.h5`` replaced,
    the journal unlinked, a new one started) changes nothing it reads.

The integrity seal (:mod:`qshpc.store.seal`)
    Every file qshpc writes starts with a 512-byte HDF5 user block (a line
    saying what it is) and ends, past HDF5's end of file, with the CRC32 of
    each 4 KiB block and a checked footer. Readers check each block the first
    time HDF5 reads it; a file without a valid seal is read in a child
    process under a time limit (:mod:`qshpc.store.isolate`).

``job.lock`` (:mod:`qshpc.store.lock`)
    The running writer's lock (flufl.lock, link-based, NFS-safe), with
    ``job.lock.holder`` (host, pid, Slurm job, since). ``job.reserve`` (1 MiB)
    is kept while a writer runs, for the final state on a full disk
    (:mod:`qshpc.store.space`).

Encodings
    Blob (``qshpc-msgpack`` version 1): see :mod:`qshpc.store.encoding_blob`.
    Native HDF5 (version 1): see :mod:`qshpc.store.encoding_h5`.
    Pickle is only used for values no other encoding holds, and reading it
    needs ``allow_pickle=True``.

Crash safety
    ``job.h5`` is never modified in place: ``create_job``, ``JobWriter.open``
    and ``finalize`` write a copy (``job.h5.tmp``), fsync it and rename it over
    ``job.h5``. While the job runs, each ``commit()`` appends one frame to
    ``job.journal`` (one ``write()``; no fsync: it survives a kill of the
    writer, not a power cut). A SIGKILL at any moment leaves ``job.h5`` whole
    and the journal with, at worst, a torn last frame that readers skip; the
    next ``JobWriter.open`` folds the journal in. The first design appended to
    ``job.h5`` under HDF5 SWMR, and the random-kill test broke it: after one
    kill (of about 150), reading the chunk index of ``/log/data`` hung, the
    SWMR reader retrying a metadata block that never checked out, so every
    result in that dataset was lost. HDF5 rewrites such metadata in place on
    every flush; a kill part way through one flush is the likely cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports
from qshpc.store.records import JOB_FILE, SCHEMA_VERSION, STATES, TaskRecord

if TYPE_CHECKING:
    from qshpc.store.encoding_blob import decode_blob, encode_blob
    from qshpc.store.inputs import JobInputs, read_inputs
    from qshpc.store.jobfile import create_job, load_arguments, save_arguments
    from qshpc.store.jsonable import to_jsonable
    from qshpc.store.reader import JobReader
    from qshpc.store.salvage import journal_records
    from qshpc.store.writer import JobWriter, recover

_LAZY = {
    "JobReader": "qshpc.store.reader",
    "JobWriter": "qshpc.store.writer",
    "recover": "qshpc.store.writer",
    "create_job": "qshpc.store.jobfile",
    "save_arguments": "qshpc.store.jobfile",
    "load_arguments": "qshpc.store.jobfile",
    "encode_blob": "qshpc.store.encoding_blob",
    "decode_blob": "qshpc.store.encoding_blob",
    "to_jsonable": "qshpc.store.jsonable",
    "JobInputs": "qshpc.store.inputs",
    "read_inputs": "qshpc.store.inputs",
    "journal_records": "qshpc.store.salvage",
}


__getattr__, __dir__ = lazy_exports("qshpc.store", _LAZY, globals())


__all__ = [
    "JOB_FILE",
    "SCHEMA_VERSION",
    "STATES",
    "JobInputs",
    "JobReader",
    "JobWriter",
    "TaskRecord",
    "create_job",
    "decode_blob",
    "encode_blob",
    "journal_records",
    "load_arguments",
    "read_inputs",
    "recover",
    "save_arguments",
    "to_jsonable",
]
