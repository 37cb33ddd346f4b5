"""Opening connections: ``create_connection``, ``create_unix_connection``,
``connect_accepted_socket``.

asyncio's argument rules and error messages, per Python version; the address resolution,
local binding, interleaving and Happy Eyeballs racing of ``BaseEventLoop``; and a socket
transport over whatever channel the loop's driver opens; with ``ssl``, the core's TLS layer
over that transport (``compat/_tls.py``), the call returning once the handshake is done.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import sys
from asyncio import staggered
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import check_tls_timeouts

from ._resolve import ensure_resolved
from ._socket_factory import new_socket
from ._tls import make_tls_transport
from ._transports import SocketTransport

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _ssl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ._loop import EventLoop

__all__ = [
    "CONNECTION_METHODS",
    "check_ssl_arguments",
    "check_ssl_socket",
    "interleave_addrinfos",
    "make_transport",
]

logger = logging.getLogger("asyncio")

_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
_ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def check_ssl_socket(sock: object) -> None:
    """asyncio refuses ``ssl.SSLSocket``: its blocking I/O would stall the loop."""
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def check_ssl_arguments(
    ssl: object, ssl_handshake_timeout: object, ssl_shutdown_timeout: object
) -> None:
    """The TLS timeouts mean something only with ``ssl``."""
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def interleave_addrinfos(infos: list[_AddrInfo], first_family_count: int = 1) -> list[_AddrInfo]:
    """Alternate address families (RFC 8305), ``first_family_count`` of the first family first."""
    by_family: dict[int, list[_AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    ordered: list[_AddrInfo] = []
    if first_family_count > 1:
        lead = first_family_count - 1
        ordered.extend(groups[0][:lead])
        del groups[0][:lead]
    for row in itertools.zip_longest(*groups):
        ordered.extend(info for info in row if info is not None)
    return ordered


def make_transport(
    loop: EventLoop,
    sock: socket.socket,
    protocol: asyncio.BaseProtocol,
    waiter: asyncio.Future[None] | None = None,
    extra: dict[str, Any] | None = None,
    server: Any = None,
) -> SocketTransport:
    """The transport of a connected stream socket, on the loop's driver."""
    return SocketTransport(loop, sock, protocol, waiter, extra, server)


async def _connection_transport(
    loop: EventLoop,
    sock: socket.socket,
    protocol_factory: _ProtocolFactory,
    ssl: Any = None,
    server_hostname: str | None = None,
    server_side: bool = False,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Wrap connected ``sock``; wait until ``connection_made`` ran (close on failure).

    With ``ssl`` that is once the TLS handshake is done: its failure is raised here.
    """
    sock.setblocking(False)
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport: asyncio.Transport
    if ssl:
        transport = make_tls_transport(
            loop,
            sock,
            protocol,
            ssl,
            waiter,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
    else:
        transport = make_transport(loop, sock, protocol, waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


def _bind_error_message(laddr: object, exc: OSError) -> str:
    detail = str(exc) if sys.version_info >= (3, 13) else exc.strerror
    return f"error while attempting to bind on address {laddr!r}: {str(detail).lower()}"


async def _connect_sock(
    loop: EventLoop,
    exceptions: list[list[OSError]],
    addr_info: _AddrInfo,
    local_addr_infos: list[_AddrInfo] | None = None,
) -> socket.socket:
    """Create, bind (to a local address of the same family) and connect one socket."""
    my_exceptions: list[OSError] = []
    exceptions.append(my_exceptions)
    family, type_, proto, _, address = addr_info
    sock = None
    try:
        sock = new_socket(loop, family, type_, proto)
        sock.setblocking(False)
        if local_addr_infos is not None:
            for lfamily, _, _, _, laddr in local_addr_infos:
                if lfamily != family:
                    continue
                try:
                    sock.bind(laddr)
                    break
                except OSError as exc:
                    my_exceptions.append(OSError(exc.errno, _bind_error_message(laddr, exc)))
            else:
                if my_exceptions:
                    raise my_exceptions.pop()
                raise OSError(f"no matching local address with {family=} found")
        await loop.sock_connect(sock, address)
        return sock
    except OSError as exc:
        my_exceptions.append(exc)
        if sock is not None:
            sock.close()
        raise
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    finally:
        # A traceback holding this frame must not hold the exceptions (a cycle).
        exceptions = my_exceptions = None  # type: ignore[assignment]


def _connect_error(exceptions: list[OSError], all_errors: bool) -> BaseException:
    if all_errors:
        return ExceptionGroup("create_connection failed", exceptions)
    if len(exceptions) == 1:
        return exceptions[0]
    model = str(exceptions[0])
    if all(str(exc) == model for exc in exceptions):
        return exceptions[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions)))


async def create_connection(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    host: str | None = None,
    port: int | str | None = None,
    *,
    ssl: Any = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: socket.socket | None = None,
    local_addr: tuple[str, int] | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    happy_eyeballs_delay: float | None = None,
    interleave: int | None = None,
    all_errors: bool = False,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Connect a stream transport to ``host:port`` (or wrap the connected ``sock``)."""
    if all_errors and sys.version_info < (3, 12):
        # all_errors arrived in Python 3.12.
        raise TypeError("create_connection() got an unexpected keyword argument 'all_errors'")
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        # The host name is checked against the certificate unless server_hostname says
        # otherwise ('' skips the check).
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    check_ssl_arguments(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl:
        # asyncio checks these once connected (and leaves its socket open): earlier here.
        check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        check_ssl_socket(sock)
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1  # Happy Eyeballs alternates families by default (RFC 8305).

    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        infos = await ensure_resolved(
            self, (host, port), family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        laddr_infos = None
        if local_addr is not None:
            laddr_infos = await ensure_resolved(
                self, local_addr, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
            )
            if not laddr_infos:
                raise OSError("getaddrinfo() returned empty list")
        if interleave:
            infos = interleave_addrinfos(infos, interleave)

        exceptions: list[list[OSError]] = []
        if happy_eyeballs_delay is None:
            for addr_info in infos:
                try:
                    sock = await _connect_sock(self, exceptions, addr_info, laddr_infos)
                    break
                except OSError:
                    continue
        else:
            sock, _, _ = await staggered.staggered_race(
                (
                    functools.partial(_connect_sock, self, exceptions, addr_info, laddr_infos)
                    for addr_info in infos
                ),
                happy_eyeballs_delay,
                loop=self,
            )
        if sock is None:
            flat = [exc for attempt in exceptions for exc in attempt]
            try:
                raise _connect_error(flat, all_errors)
            finally:
                exceptions = flat = None  # type: ignore[assignment]
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        if sock.type != socket.SOCK_STREAM:
            # AF_UNIX stream sockets are welcome too, as in asyncio.
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")

    transport, protocol = await _connection_transport(
        self,
        sock,
        protocol_factory,
        ssl,
        server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    if self._debug:
        logger.debug(
            "%r connected to %s:%r: (%r, %r)",
            transport.get_extra_info("socket"),
            host,
            port,
            transport,
            protocol,
        )
    return transport, protocol


async def create_unix_connection(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    ssl: Any = None,
    sock: socket.socket | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Connect a stream transport to the Unix socket at ``path`` (or wrap ``sock``)."""
    if sys.platform == "win32":
        raise NotImplementedError("Unix sockets are not available on this platform")
    if ssl:
        if server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        # asyncio checks these once connected (and leaves its socket open): earlier here.
        check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
    else:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        check_ssl_arguments(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        sock = new_socket(self, socket.AF_UNIX, socket.SOCK_STREAM, 0)
        try:
            sock.setblocking(False)
            await self.sock_connect(sock, path)
        except BaseException:
            sock.close()
            raise
    else:
        if sock is None:
            raise ValueError("no path and sock were specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
    return await _connection_transport(
        self,
        sock,
        protocol_factory,
        ssl,
        server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )


async def connect_accepted_socket(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    sock: socket.socket,
    *,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Wrap a socket accepted outside the loop in a transport."""
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    check_ssl_arguments(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl:
        check_tls_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
    check_ssl_socket(sock)
    transport, protocol = await _connection_transport(
        self,
        sock,
        protocol_factory,
        ssl,
        "",
        server_side=True,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    if self._debug:
        logger.debug(
            "%r handled: (%r, %r)", transport.get_extra_info("socket"), transport, protocol
        )
    return transport, protocol


#: name -> method, for the compat loop to place in its class body.
CONNECTION_METHODS: dict[str, Callable[..., Any]] = {
    "create_connection": create_connection,
    "create_unix_connection": create_unix_connection,
    "connect_accepted_socket": connect_accepted_socket,
}
