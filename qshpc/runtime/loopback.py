"""An in-process :class:`~qshpc.runtime.protocol.Wiring`: ranks as threads, messages through queues.

It lets the dispatcher and the worker loop run unchanged in one process, the
way submitit tests its job side with a mocked subprocess: the unit tests start
rank 0's :class:`~qshpc.runtime.dispatcher.Dispatcher` and a few
:func:`~qshpc.runtime.worker.serve` threads over one :class:`Loopback`.

Messages are pickled on the way, as mpi4py does (an object that cannot be
pickled fails the send the same way), and delivered in order per sender and
receiver. A test can cut a rank off (:meth:`Loopback.cut`: its messages are
dropped, as if it died) and read what travelled (:attr:`Loopback.log`).
"""

from __future__ import annotations

import pickle
import threading
from collections import deque
from typing import Any

#: MPI's wildcards (any value that no rank or tag takes).
ANY_SOURCE = -2
ANY_TAG = -1


class _Status:
    __slots__ = ("source", "tag")

    def __init__(self) -> None:
        self.source = -1
        self.tag = -1

    def Get_source(self) -> int:
        return self.source

    def Get_tag(self) -> int:
        return self.tag


class _Message:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self) -> Any:
        return pickle.loads(self.data)


class _Done:
    """A send that completed at once (the message is in the receiver's queue)."""

    def test(self) -> tuple[bool, Any]:
        return True, None

    def wait(self) -> Any:
        return None

    def Test(self) -> bool:
        return True

    def Wait(self) -> None:
        return None


_DONE = _Done()


class _Endpoint:
    """One rank's view of one communicator (a :class:`~qshpc.runtime.protocol.Transport`)."""

    def __init__(self, net: Loopback, channel: int, rank: int) -> None:
        self.net = net
        self.channel = channel
        self.rank = rank

    def improbe(self, source: int, tag: int, status: Any = None) -> _Message | None:
        box = self.net._boxes[self.channel][self.rank]
        with self.net._lock:
            self.net.probes[self.channel][self.rank] += 1
            for i, (src, t, data) in enumerate(box):
                if (source == ANY_SOURCE or src == source) and (tag == ANY_TAG or t == tag):
                    del box[i]
                    if status is not None:
                        status.source, status.tag = src, t
                    return _Message(data)
        return None

    def isend(self, obj: Any, dest: int, tag: int) -> _Done:
        data = pickle.dumps(obj, protocol=5)  # raises as mpi4py's pickling would
        with self.net._lock:
            self.net.log.append((self.channel, self.rank, dest, tag, obj))
            if self.rank not in self.net._cut and dest not in self.net._cut:
                self.net._boxes[self.channel][dest].append((self.rank, tag, data))
        return _DONE

    def send(self, obj: Any, dest: int, tag: int) -> None:
        self.isend(obj, dest, tag)


class LoopbackWiring:
    """Rank ``rank``'s wiring on a :class:`Loopback` (see :class:`~qshpc.runtime.protocol.Wiring`)."""

    def __init__(self, net: Loopback, rank: int) -> None:
        self.comm = _Endpoint(net, 0, rank)
        self.world = _Endpoint(net, 1, rank)
        self.any_source = ANY_SOURCE
        self.any_tag = ANY_TAG
        self.multithreaded = True

    def status(self) -> _Status:
        return _Status()

    def receive(self, msg: _Message) -> Any:
        """The object sent (see :meth:`qshpc.runtime.protocol.Wiring.receive`)."""
        try:
            return pickle.loads(msg.data)
        except Exception as exc:
            from qshpc.runtime.unload import Unloadable

            raise Unloadable(msg.data, []) from exc


class Loopback:
    """``size`` ranks in one process.

    Attributes:
        log: Every message sent, in order: ``(channel, source, dest, tag, object)``
            (channel 0 is the pkl5 communicator, 1 the plain world).
        probes: How often each rank probed each channel (``probes[channel][rank]``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._boxes: list[list[deque[tuple[int, int, bytes]]]] = [
            [deque() for _ in range(size)] for _ in range(2)
        ]
        self._cut: set[int] = set()
        self.log: list[tuple[int, int, int, int, Any]] = []
        self.probes = [[0] * size for _ in range(2)]  # improbe calls, by channel and rank

    def wiring(self, rank: int) -> LoopbackWiring:
        """Rank ``rank``'s wiring."""
        return LoopbackWiring(self, rank)

    def cut(self, rank: int) -> None:
        """Drop every message from and to ``rank`` from now on (as if it died)."""
        with self._lock:
            self._cut.add(rank)

    def deliver(self, dest: int, tag: int, obj: Any, source: int = 0, channel: int = 0) -> None:
        """Put a message in ``dest``'s queue directly (even a cut rank's: to stop its thread)."""
        with self._lock:
            self._boxes[channel][dest].append((source, tag, pickle.dumps(obj, protocol=5)))

    def sent(self, tag: int, channel: int = 0) -> list[tuple[int, int, Any]]:
        """The messages sent with ``tag``: ``(source, dest, object)``."""
        with self._lock:
            return [(s, d, o) for c, s, d, t, o in self.log if t == tag and c == channel]


__all__ = ["ANY_SOURCE", "ANY_TAG", "Loopback", "LoopbackWiring"]
