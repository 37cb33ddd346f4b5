"""asyncio's socket transport: the core's state machine, dressed as an ``asyncio.Transport``.

All the behaviour is :class:`sansloop.core.StreamTransportCore`'s; this class adds what needs
asyncio or the OS: ``isinstance(t, asyncio.Transport)``, the ``get_extra_info`` keys asyncio
fills from the socket, ``TCP_NODELAY``, the loop's registry of descriptors owned by
transports, the empty-buffer waiter that ``sendfile`` uses, ``repr`` and the unclosed-transport
warning.  The bytes move through whatever channel the loop's driver opens for the socket.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import warnings
from asyncio import constants, trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import StreamTransportCore

if TYPE_CHECKING:
    from sansloop.drivers import StreamDriver

    from ._loop import EventLoop

__all__ = [
    "SocketOwner",
    "SocketTransport",
    "set_nodelay",
    "set_result_unless_cancelled",
    "stream_driver",
]


def set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    """Complete ``fut`` unless someone cancelled it meanwhile."""
    if not fut.cancelled():
        fut.set_result(result)


def set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle's algorithm on TCP sockets: small writes leave at once, as in asyncio."""
    if (
        hasattr(socket, "TCP_NODELAY")
        and sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto == socket.IPPROTO_TCP
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def stream_driver(loop: EventLoop) -> StreamDriver:
    """The loop's driver, if it can carry stream transports."""
    driver = loop._driver
    if not hasattr(driver, "open_stream"):
        raise NotImplementedError(
            f"the {type(driver).__name__} driver cannot carry stream transports yet"
        )
    return driver  # type: ignore[return-value]


def socket_extra(sock: socket.socket, extra: dict[str, Any] | None) -> dict[str, Any]:
    """asyncio's ``get_extra_info`` keys for a socket transport."""
    extra = {} if extra is None else extra
    extra["socket"] = trsock.TransportSocket(sock)
    try:
        extra["sockname"] = sock.getsockname()
    except OSError:
        extra["sockname"] = None
    if "peername" not in extra:
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None
    return extra


class SocketOwner:
    """``repr`` and the unclosed-transport warning of a transport that owns a socket.

    Mixed into the stream and datagram transports, whose core provides ``_channel``,
    ``_closing`` and ``get_write_buffer_size``.
    """

    # Set only once __init__ has finished, so that __del__ of a half-made transport leaves
    # the socket to whoever made it.
    _sock: socket.socket | None = None
    _sock_fd: int
    _loop: EventLoop
    _channel: Any
    _closing: bool
    _buffer_size: int

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._sock is not None and not self._loop.is_closed():
            reading = getattr(self._channel, "reading", None)
            if reading is not None:
                info.append("read=polling" if reading else "read=idle")
            writing = getattr(self._channel, "writing", None)
            state = "polling" if writing else "idle"
            info.append(f"write=<{state}, bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._channel.close()
            self._sock = None
            self._abandoned()

    def _abandoned(self) -> None:
        """Hook: the transport was collected unclosed (its socket is closed now)."""

    def _released(self) -> None:
        self._sock = None


class SocketTransport(SocketOwner, StreamTransportCore, asyncio.Transport):
    """A connected TCP or Unix stream socket's transport."""

    #: loop.sendfile() may use os.sendfile() on the socket once the buffer drained.
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    #: loop.start_tls() may put a TLS layer over it.
    _start_tls_compatible = True

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        driver = stream_driver(loop)
        extra = socket_extra(sock, extra)
        self._sock_fd = sock.fileno()
        self._loop = loop
        channel = driver.open_stream(sock, self)
        StreamTransportCore.__init__(self, loop, channel, protocol, extra, server)
        self._sock = sock
        loop._transports[self._sock_fd] = self
        set_nodelay(sock)
        on_made: Callable[[], None] | None = None
        if waiter is not None:

            def on_made() -> None:
                set_result_unless_cancelled(waiter, None)

        self.start(on_made)

    if sys.version_info < (3, 12):

        def writelines(self, list_of_data: Any) -> None:
            # 3.11's transport has no writelines of its own: it is write() of the join.
            self.write(b"".join(list_of_data))

    def _is_buffered(self, protocol: Any) -> bool:
        return isinstance(protocol, asyncio.BufferedProtocol)

    def _abandoned(self) -> None:
        server = self._server
        if server is not None:
            self._server = None
            server._detach(self)

    # -- what loop.sendfile() needs ----------------------------------------------------

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        """A future done once every buffered byte has left (writes are refused meanwhile)."""
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._empty_waiter = waiter
        if not self._buffer:
            waiter.set_result(None)
        return waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None
