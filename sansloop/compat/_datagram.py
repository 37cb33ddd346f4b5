"""Datagram endpoints: ``loop.create_datagram_endpoint`` and its transport.

asyncio's argument rules and error messages, per Python version (3.11 and 3.12 want
``SOCK_DGRAM`` and say "A UDP Socket was expected"; 3.13 refuses only ``SOCK_STREAM``, sends
empty datagrams and counts a header per queued datagram); the address resolution, per-family
pairing of local and remote addresses, stale Unix socket removal and socket options of
``BaseEventLoop``; and a transport whose behaviour is :class:`sansloop.core.
DatagramTransportCore`'s, over whatever channel the loop's driver opens for the socket.

``reuse_address`` is not a parameter: Python 3.11 removed it from asyncio, so passing it is
the same ``TypeError`` ("unexpected keyword argument") on every supported version.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import DatagramTransportCore

from ._readiness import ensure_fd_no_transport
from ._resolve import ensure_resolved
from ._servers import set_reuseport
from ._socket_factory import driver_owns_sockets, new_socket
from ._transports import SocketOwner, set_result_unless_cancelled, socket_extra
from ._unix_paths import remove_stale_socket

if TYPE_CHECKING:
    from sansloop.drivers import DatagramDriver

    from ._loop import EventLoop

__all__ = ["DATAGRAM_METHODS", "DatagramSocketTransport", "datagram_driver"]

logger = logging.getLogger("asyncio")

_ProtocolFactory = Callable[[], asyncio.BaseProtocol]
#: ((family, proto), (local address, remote address)) for each socket worth trying.
_AddrPair = tuple[tuple[int, int], tuple[Any, Any]]

#: Python 3.13 accepts any non-stream ``sock=``, sends empty datagrams and counts 8 header
#: bytes per queued datagram.
_PY313 = sys.version_info >= (3, 13)


def datagram_driver(loop: EventLoop) -> DatagramDriver:
    """The loop's driver, if it can carry datagram transports."""
    driver = loop._driver
    if not hasattr(driver, "open_datagram"):
        raise NotImplementedError(
            f"the {type(driver).__name__} driver cannot carry datagram transports yet"
        )
    return driver  # type: ignore[return-value]


class DatagramSocketTransport(
    SocketOwner, DatagramTransportCore, asyncio.DatagramTransport, asyncio.Transport
):
    """A UDP or Unix datagram socket's transport.

    Like asyncio's selector transport it is an ``asyncio.Transport`` too (reading can be
    paused; the stream-only methods raise ``NotImplementedError``).
    """

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        driver = datagram_driver(loop)
        loop._check_closed()
        extra = socket_extra(sock, extra)
        self._loop = loop
        self._sock_fd = sock.fileno()
        channel = driver.open_datagram(sock, self)
        DatagramTransportCore.__init__(
            self,
            loop,
            channel,
            protocol,
            address=address,
            connected=bool(extra["peername"]),
            extra=extra,
            header_size=8 if _PY313 else 0,
            send_empty=_PY313,
        )
        self._sock = sock
        loop._transports[self._sock_fd] = self
        on_made: Callable[[], None] | None = None
        if waiter is not None:

            def on_made() -> None:
                set_result_unless_cancelled(waiter, None)

        self.start(on_made)


# -- create_datagram_endpoint --------------------------------------------------------------


def _check_given_socket(sock: Any, options: dict[str, Any]) -> None:
    """``sock=`` must be a datagram socket, and excludes every socket-making argument."""
    if _PY313:
        if sock.type == socket.SOCK_STREAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
    elif sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    if any(options.values()):
        problems = ", ".join(f"{name}={value}" for name, value in options.items() if value)
        raise ValueError(
            "socket modifier keyword arguments can not be used when sock is specified. "
            f"({problems})"
        )


async def _address_pairs(
    loop: EventLoop,
    local_addr: Any,
    remote_addr: Any,
    family: int,
    proto: int,
    flags: int,
) -> list[_AddrPair]:
    """The (family, proto) pairs to try, each with its resolved local and remote address."""
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError("unexpected address family")
        return [((family, proto), (None, None))]
    if hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
        for addr in (local_addr, remote_addr):
            if addr is not None and not isinstance(addr, str):
                raise TypeError("string is expected")
        if local_addr and not driver_owns_sockets(loop):
            remove_stale_socket(local_addr)
        return [((family, proto), (local_addr, remote_addr))]
    # Join the addresses by (family, proto), in the order getaddrinfo gave them.
    by_key: dict[tuple[int, int], list[Any]] = {}
    for index, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        infos = await ensure_resolved(
            loop, addr, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        for fam, _, pro, _, address in infos:
            # The last address of a (family, proto) wins, as in asyncio.
            by_key.setdefault((fam, pro), [None, None])[index] = address
    # Each given address needs an entry in the pair's family.
    pairs: list[_AddrPair] = [
        (key, (pair[0], pair[1]))
        for key, pair in by_key.items()
        if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))
    ]
    if not pairs:
        raise ValueError("can not get address information")
    return pairs


async def _open_socket(
    loop: EventLoop,
    pairs: list[_AddrPair],
    local_addr: Any,
    remote_addr: Any,
    reuse_port: bool | None,
    allow_broadcast: bool | None,
) -> tuple[socket.socket, Any]:
    """The first socket that binds and connects; the first error when none does."""
    exceptions: list[OSError] = []
    for (family, proto), (local_address, remote_address) in pairs:
        sock = None
        try:
            sock = new_socket(loop, family, socket.SOCK_DGRAM, proto)
            if reuse_port:
                set_reuseport(sock)
            if allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setblocking(False)
            if local_addr:
                sock.bind(local_address)
            r_addr = None
            if remote_addr:
                if not allow_broadcast:
                    await loop.sock_connect(sock, remote_address)
                r_addr = remote_address
        except OSError as exc:
            if sock is not None:
                sock.close()
            exceptions.append(exc)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        else:
            return sock, r_addr
    try:
        raise exceptions[0]
    finally:
        # The raised exception's traceback would keep the others (and this frame) alive.
        exceptions.clear()


async def create_datagram_endpoint(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    local_addr: Any = None,
    remote_addr: Any = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
    sock: socket.socket | None = None,
) -> tuple[asyncio.DatagramTransport, asyncio.BaseProtocol]:
    """Create a datagram endpoint: a new UDP or Unix datagram socket, or ``sock``."""
    owned = sock is None
    if sock is not None:
        _check_given_socket(
            sock,
            {
                "local_addr": local_addr,
                "remote_addr": remote_addr,
                "family": family,
                "proto": proto,
                "flags": flags,
                "reuse_port": reuse_port,
                "allow_broadcast": allow_broadcast,
            },
        )
        datagram_driver(self)
        sock.setblocking(False)
        r_addr = None
    else:
        pairs = await _address_pairs(self, local_addr, remote_addr, family, proto, flags)
        datagram_driver(self)
        sock, r_addr = await _open_socket(
            self, pairs, local_addr, remote_addr, reuse_port, allow_broadcast
        )
    try:
        protocol = protocol_factory()
        waiter = self.create_future()
        ensure_fd_no_transport(self, sock)
        transport = DatagramSocketTransport(self, sock, protocol, r_addr, waiter)
    except BaseException:
        # Unlike asyncio, never leave a socket we made behind (the caller's stays theirs).
        if owned:
            sock.close()
        raise
    if self._debug:
        if local_addr:
            logger.info(
                "Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                local_addr,
                remote_addr,
                transport,
                protocol,
            )
        else:
            logger.debug(
                "Datagram endpoint remote_addr=%r created: (%r, %r)",
                remote_addr,
                transport,
                protocol,
            )
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


create_datagram_endpoint.__qualname__ = "EventLoop.create_datagram_endpoint"

#: name -> method, for the compat loop to place in its class body.
DATAGRAM_METHODS: dict[str, Callable[..., Any]] = {
    "create_datagram_endpoint": create_datagram_endpoint,
}
