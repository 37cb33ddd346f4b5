"""Socket operations the way a readiness driver completes them.

Each operation is one non-blocking system call, retried: :meth:`Op.step` makes the call and
returns the result, :data:`AGAIN` when it made progress but is not finished (a partial
``send``), or raises ``BlockingIOError`` when the socket is not ready.  The driver owns the
rest: trying at once, queueing, watching the descriptor, completing the future.  Nothing here
knows about selectors, so the trio and virtual drivers can reuse these classes as they are.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "AGAIN",
    "Accept",
    "Connect",
    "Op",
    "Recv",
    "RecvFrom",
    "RecvFromInto",
    "RecvInto",
    "SendAll",
    "SendTo",
    "SocketOperations",
    "settle",
]

#: Returned by :meth:`Op.step` when the operation progressed but must wait again.
AGAIN: Final = object()


class Op:
    """One started operation on one socket, and the future it completes."""

    __slots__ = ("abandon", "fut", "sock")

    #: True for operations that wait until the socket is readable, False for writable.
    reading: ClassVar[bool] = True

    def __init__(self, fut: asyncio.Future[Any], sock: socket.socket) -> None:
        self.fut = fut
        self.sock = sock
        #: The driver's done-callback on ``fut`` while the operation is queued.
        self.abandon: Callable[[asyncio.Future[Any]], None] | None = None

    def first(self) -> Any:
        """The first attempt; only ``connect`` differs from a retry."""
        return self.step()

    def step(self) -> Any:
        """Try the system call once (raises ``BlockingIOError`` when not ready)."""
        raise NotImplementedError


class Recv(Op):
    __slots__ = ("nbytes",)

    def __init__(self, fut: asyncio.Future[bytes], sock: socket.socket, nbytes: int) -> None:
        super().__init__(fut, sock)
        self.nbytes = nbytes

    def step(self) -> bytes:
        return self.sock.recv(self.nbytes)


class RecvInto(Op):
    __slots__ = ("buf",)

    def __init__(self, fut: asyncio.Future[int], sock: socket.socket, buf: WriteableBuffer) -> None:
        super().__init__(fut, sock)
        self.buf = buf

    def step(self) -> int:
        return self.sock.recv_into(self.buf)


class RecvFrom(Op):
    __slots__ = ("bufsize",)

    def __init__(
        self, fut: asyncio.Future[tuple[bytes, Any]], sock: socket.socket, bufsize: int
    ) -> None:
        super().__init__(fut, sock)
        self.bufsize = bufsize

    def step(self) -> tuple[bytes, Any]:
        return self.sock.recvfrom(self.bufsize)


class RecvFromInto(Op):
    __slots__ = ("buf", "nbytes")

    def __init__(
        self,
        fut: asyncio.Future[tuple[int, Any]],
        sock: socket.socket,
        buf: WriteableBuffer,
        nbytes: int,
    ) -> None:
        super().__init__(fut, sock)
        self.buf = buf
        self.nbytes = nbytes

    def step(self) -> tuple[int, Any]:
        return self.sock.recvfrom_into(self.buf, self.nbytes)


class SendAll(Op):
    """``send`` until every byte is out; each partial send returns :data:`AGAIN`."""

    __slots__ = ("data", "pos", "view")
    reading = False

    def __init__(
        self, fut: asyncio.Future[None], sock: socket.socket, data: ReadableBuffer
    ) -> None:
        super().__init__(fut, sock)
        self.data = data
        self.view: memoryview | None = None
        self.pos = 0

    def step(self) -> object:
        view = self.view
        if view is None:
            # The first send takes the caller's object as it is, so a wrong type fails with
            # socket.send()'s own message (as in asyncio).
            sent = self.sock.send(self.data)
            if type(self.data) is bytes and sent == len(self.data):
                return None
            view = self.view = memoryview(self.data).cast("B")
        else:
            sent = self.sock.send(view[self.pos :])
        self.pos += sent
        if self.pos >= len(view):
            self.view = None
            self.data = b""
            return None
        return AGAIN


class SendTo(Op):
    __slots__ = ("address", "data")
    reading = False

    def __init__(
        self, fut: asyncio.Future[int], sock: socket.socket, data: ReadableBuffer, address: Any
    ) -> None:
        super().__init__(fut, sock)
        self.data = data
        self.address = address

    def step(self) -> int:
        return self.sock.sendto(self.data, self.address)


class Connect(Op):
    """``connect`` once; when it is in progress, writability means it finished."""

    __slots__ = ("address",)
    reading = False

    def __init__(self, fut: asyncio.Future[None], sock: socket.socket, address: Any) -> None:
        super().__init__(fut, sock)
        self.address = address

    def first(self) -> None:
        self.sock.connect(self.address)

    def step(self) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            # OSError picks the subclass from the errno (ConnectionRefusedError, ...).
            raise OSError(err, f"Connect call failed {self.address}")


class Accept(Op):
    __slots__ = ()

    def step(self) -> tuple[socket.socket, Any]:
        conn, address = self.sock.accept()
        try:
            conn.setblocking(False)
        except BaseException:
            conn.close()
            raise
        return conn, address


def settle(op: Op, first: bool) -> bool:
    """Try ``op`` once; complete its future and return True unless the call would block."""
    fut = op.fut
    try:
        result = op.first() if first else op.step()
    except (BlockingIOError, InterruptedError):
        return False
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if op.abandon is not None:
            fut.remove_done_callback(op.abandon)
        fut.set_exception(exc)
        return True
    if result is AGAIN:
        return False
    if op.abandon is not None:
        # Completed by us, not cancelled: no need for the clean-up callback to run.
        fut.remove_done_callback(op.abandon)
    fut.set_result(result)
    return True


class SocketOperations:
    """A readiness driver's ``SocketDriver`` methods: each makes its :class:`Op` and hands it
    to the driver's ``_start``, which tries it, queues it and watches the descriptor."""

    def _start(self, op: Op) -> None:
        raise NotImplementedError

    def sock_recv(self, fut: asyncio.Future[bytes], sock: socket.socket, nbytes: int) -> None:
        self._start(Recv(fut, sock, nbytes))

    def sock_recv_into(
        self, fut: asyncio.Future[int], sock: socket.socket, buf: WriteableBuffer
    ) -> None:
        self._start(RecvInto(fut, sock, buf))

    def sock_recvfrom(
        self, fut: asyncio.Future[tuple[bytes, Any]], sock: socket.socket, bufsize: int
    ) -> None:
        self._start(RecvFrom(fut, sock, bufsize))

    def sock_recvfrom_into(
        self,
        fut: asyncio.Future[tuple[int, Any]],
        sock: socket.socket,
        buf: WriteableBuffer,
        nbytes: int,
    ) -> None:
        self._start(RecvFromInto(fut, sock, buf, nbytes))

    def sock_sendall(
        self, fut: asyncio.Future[None], sock: socket.socket, data: ReadableBuffer
    ) -> None:
        self._start(SendAll(fut, sock, data))

    def sock_sendto(
        self, fut: asyncio.Future[int], sock: socket.socket, data: ReadableBuffer, address: Any
    ) -> None:
        self._start(SendTo(fut, sock, data, address))

    def sock_connect(self, fut: asyncio.Future[None], sock: socket.socket, address: Any) -> None:
        self._start(Connect(fut, sock, address))

    def sock_accept(
        self, fut: asyncio.Future[tuple[socket.socket, Any]], sock: socket.socket
    ) -> None:
        self._start(Accept(fut, sock))
