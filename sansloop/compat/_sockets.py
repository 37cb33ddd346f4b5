"""The ``sock_*`` loop methods: asyncio's argument checks, then the driver's operation.

Each method checks its socket as asyncio does (no ``ssl.SSLSocket``; in debug mode, no
blocking socket), creates the future and lets the driver complete it
(:class:`sansloop.drivers.SocketDriver`): a readiness driver tries the call at once and
watches the descriptor only when it would block, so a ready socket costs no loop iteration;
a completion driver submits the operation.  ``sock_connect`` resolves IPv4/IPv6 addresses
first, through ``getaddrinfo`` unless the host is already numeric.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._readiness import ensure_fd_no_transport
from ._resolve import HAS_IPV6, ensure_resolved

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from sansloop.drivers import SocketDriver

    from ._loop import EventLoop

__all__ = ["SOCKET_METHODS"]


def _driver(loop: EventLoop, sock: socket.socket) -> SocketDriver:
    """The loop's driver, once ``sock`` passed asyncio's checks."""
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    ensure_fd_no_transport(loop, sock)
    loop._check_closed()
    driver = loop._driver
    if not hasattr(driver, "sock_recv"):
        raise NotImplementedError(f"the {type(driver).__name__} driver has no socket operations")
    return driver  # type: ignore[return-value]


async def sock_recv(self: EventLoop, sock: socket.socket, nbytes: int) -> bytes:
    """Receive up to ``nbytes`` bytes (b"" at end of stream)."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_recv(fut, sock, nbytes)
    return await fut  # type: ignore[no-any-return]


async def sock_recv_into(self: EventLoop, sock: socket.socket, buf: WriteableBuffer) -> int:
    """Receive into ``buf``; return the number of bytes received."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_recv_into(fut, sock, buf)
    return await fut  # type: ignore[no-any-return]


async def sock_recvfrom(self: EventLoop, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
    """Receive one datagram of up to ``bufsize`` bytes; return (data, sender address)."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_recvfrom(fut, sock, bufsize)
    return await fut  # type: ignore[no-any-return]


async def sock_recvfrom_into(
    self: EventLoop, sock: socket.socket, buf: WriteableBuffer, nbytes: int = 0
) -> tuple[int, Any]:
    """Receive one datagram into ``buf`` (at most ``nbytes``, 0: all of it)."""
    driver = _driver(self, sock)
    if not nbytes:
        nbytes = len(buf)  # type: ignore[arg-type]
    fut = self.create_future()
    driver.sock_recvfrom_into(fut, sock, buf, nbytes)
    return await fut  # type: ignore[no-any-return]


async def sock_sendall(self: EventLoop, sock: socket.socket, data: ReadableBuffer) -> None:
    """Send every byte of ``data``; on error, how much was sent is unknown (as in asyncio)."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_sendall(fut, sock, data)
    await fut


async def sock_sendto(
    self: EventLoop, sock: socket.socket, data: ReadableBuffer, address: Any
) -> int:
    """Send one datagram to ``address``; return the number of bytes sent."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_sendto(fut, sock, data, address)
    return await fut  # type: ignore[no-any-return]


async def sock_connect(self: EventLoop, sock: socket.socket, address: Any) -> None:
    """Connect ``sock`` to ``address`` (resolved first for IPv4 and IPv6 sockets)."""
    driver = _driver(self, sock)
    if sock.family == socket.AF_INET or (HAS_IPV6 and sock.family == socket.AF_INET6):
        resolved = await ensure_resolved(
            self, address, family=sock.family, type=sock.type, proto=sock.proto
        )
        address = resolved[0][4]
    fut = self.create_future()
    driver.sock_connect(fut, sock, address)
    try:
        await fut
    finally:
        # A failed connect's exception holds this frame; the frame must not hold the future.
        del fut


async def sock_accept(self: EventLoop, sock: socket.socket) -> tuple[socket.socket, Any]:
    """Accept one connection; return (non-blocking socket, peer address)."""
    driver = _driver(self, sock)
    fut = self.create_future()
    driver.sock_accept(fut, sock)
    return await fut  # type: ignore[no-any-return]


#: name -> method, for the compat loop to place in its class body.
SOCKET_METHODS: dict[str, Callable[..., Any]] = {
    "sock_recv": sock_recv,
    "sock_recv_into": sock_recv_into,
    "sock_recvfrom": sock_recvfrom,
    "sock_recvfrom_into": sock_recvfrom_into,
    "sock_sendall": sock_sendall,
    "sock_sendto": sock_sendto,
    "sock_connect": sock_connect,
    "sock_accept": sock_accept,
}
