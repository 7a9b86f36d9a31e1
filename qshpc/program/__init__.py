"""The program layer: what a qshpc program calls, and the interface the runtime fills in.

- :mod:`~qshpc.program.api`: ``get_arguments``, ``save_result``, ``update_status``,
  ``distribute_task``, ``get``, ``put``, ``wait``;
- :mod:`~qshpc.program.refs`: ``TaskRef`` (future-like) and ``ObjectRef``;
- :mod:`~qshpc.program.backend`: the ``Backend`` interface, the active backend,
  ``InlineBackend`` (no MPI), task keys and argument payloads;
- :mod:`~qshpc.program.session`: the running job as rank 0 sees it (store, result);
- :mod:`~qshpc.program.resources`: ``Target`` (a task's resource request);
- :mod:`~qshpc.program.getprogress`: ``get(..., progress=True)``.

The MPI backend (``qshpc.runtime.dispatcher.Dispatcher``) sits a layer up and
implements ``Backend``; nothing here imports mpi4py.
"""
