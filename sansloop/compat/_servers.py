"""Serving connections: ``Server``, ``create_server`` and ``create_unix_server``.

A :class:`Server` owns its listening sockets and one driver listener per socket
(:class:`sansloop.drivers.StreamListener`).  Each accepted socket becomes a transport at once,
attached to the server so that ``wait_closed`` can wait for the last client to go, with the
peer address asyncio puts in ``get_extra_info('peername')``.  asyncio's per-version
behaviours are kept: ``wait_closed`` returns at once on a closed server on 3.11 but waits
for the clients from 3.12 on; ``close_clients``/``abort_clients``, ``keep_alive`` and
``cleanup_socket`` exist from 3.13.
"""

from __future__ import annotations

import asyncio
import collections.abc
import errno
import itertools
import logging
import os
import socket
import sys
import weakref
from asyncio import trsock
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._connections import check_ssl_arguments, check_ssl_socket, make_transport
from ._resolve import HAS_IPV6, ensure_resolved
from ._socket_factory import driver_owns_sockets, new_socket
from ._tls import make_tls_transport
from ._transports import stream_driver
from ._unix_paths import remove_stale_socket

if TYPE_CHECKING:
    from sansloop.drivers import StreamListener

    from ._loop import EventLoop

__all__ = ["SERVER_METHODS", "Server", "set_reuseport"]

logger = logging.getLogger("asyncio")

#: Seconds before accepting again after running out of descriptors or memory (asyncio's).
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class Server(asyncio.AbstractServer):
    """Listening sockets and the connections accepted on them."""

    def __init__(
        self,
        loop: EventLoop,
        sockets: list[socket.socket],
        protocol_factory: _ProtocolFactory,
        backlog: int,
        cleanup: dict[socket.socket, int] | None = None,
        ssl_context: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        # Weak: a client transport dropped without closing must still warn when collected.
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._waiters: list[asyncio.Future[None]] | None = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        # asyncio's Server has these, and libraries read them (websockets' test helpers pick
        # ws:// or wss:// from _ssl_context).
        self._ssl_context: Any = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None
        self._listeners: dict[socket.socket, StreamListener] = {}
        loop._servers.add(self)
        # Unix socket paths to unlink on close: socket -> the inode it was bound to.
        self._cleanup = cleanup or {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # -- clients --------------------------------------------------------------------------

    def _attach(self, transport: Any) -> None:
        self._clients.add(transport)

    def _detach(self, transport: Any) -> None:
        self._clients.discard(transport)
        if not self._clients and self._sockets is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # -- accepting ------------------------------------------------------------------------

    def _start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        driver = stream_driver(self._loop)
        for sock in self._sockets:
            sock.listen(self._backlog)
            listener = driver.open_listener(
                sock,
                self._backlog,
                self._accepted,
                lambda exc, sock=sock: self._accept_failed(sock, exc),  # type: ignore[misc]
            )
            self._listeners[sock] = listener
            listener.start()

    def _accepted(self, conn: socket.socket, address: Any) -> None:
        loop = self._loop
        if loop._debug:
            logger.debug("%r got a new connection from %r: %r", self, address, conn)
        protocol = None
        try:
            protocol = self._protocol_factory()
            extra = {"peername": address}
            if self._ssl_context:
                self._accept_tls(conn, protocol, extra)
            else:
                make_transport(loop, conn, protocol, extra=extra, server=self)
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException as exc:
            conn.close()
            self._creation_failed(exc, protocol)

    def _creation_failed(self, exc: BaseException, protocol: Any, transport: Any = None) -> None:
        """asyncio reports a connection that could not be set up only in debug mode."""
        if self._loop._debug:
            context: dict[str, Any] = {
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
            }
            if protocol is not None:
                context["protocol"] = protocol
            if transport is not None:
                context["transport"] = transport
            self._loop.call_exception_handler(context)

    def _accept_tls(
        self, conn: socket.socket, protocol: asyncio.BaseProtocol, extra: dict[str, Any]
    ) -> None:
        """Server-side TLS over the accepted ``conn``; a failed handshake closes it."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        transport = make_tls_transport(
            self._loop,
            conn,
            protocol,
            self._ssl_context,
            waiter,
            server_side=True,
            extra=extra,
            server=self,
            ssl_handshake_timeout=self._ssl_handshake_timeout,
            ssl_shutdown_timeout=self._ssl_shutdown_timeout,
        )

        def handshake_done(waiter: asyncio.Future[None]) -> None:
            if waiter.cancelled():
                transport.close()
                return
            exc = waiter.exception()
            if exc is not None:
                transport.close()
                self._creation_failed(exc, protocol, transport)

        waiter.add_done_callback(handshake_done)

    def _accept_failed(self, sock: socket.socket, exc: OSError) -> None:
        if exc.errno not in _OUT_OF_RESOURCES:
            raise exc  # The loop reports it, as asyncio does, and keeps serving.
        # Linux keeps reporting the socket readable: stop, and try again in a while.
        self._loop.call_exception_handler(
            {
                "message": "socket.accept() out of system resource",
                "exception": exc,
                "socket": trsock.TransportSocket(sock),
            }
        )
        listener = self._listeners.get(sock)
        if listener is not None:
            listener.stop()
            self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting, sock)

    def _resume_accepting(self, sock: socket.socket) -> None:
        listener = self._listeners.get(sock)
        if listener is not None and self._serving:
            listener.start()

    # -- asyncio.AbstractServer -----------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[trsock.TransportSocket, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(sock) for sock in self._sockets)

    def close(self) -> None:
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._stop_serving(sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if not self._clients:
            self._wakeup()

    def _stop_serving(self, sock: socket.socket) -> None:
        listener = self._listeners.pop(sock, None)
        if listener is not None:
            listener.stop()
        inode = self._cleanup.pop(sock, None)
        path = sock.getsockname() if inode is not None else None
        sock.close()
        if path is not None:
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    if sys.version_info >= (3, 13):

        def close_clients(self) -> None:
            for transport in self._clients.copy():
                transport.close()

        def abort_clients(self) -> None:
            for transport in self._clients.copy():
                transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        # One loop iteration, so that every listener is registered when this returns.
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its last connection has gone.

        On Python 3.11 (as in its asyncio) a server already closed returns at once, even
        with clients still connected.
        """
        if self._waiters is None:
            return
        if sys.version_info < (3, 12) and self._sockets is None:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


def set_reuseport(sock: socket.socket) -> None:
    """SO_REUSEPORT, with asyncio's ValueError where the platform lacks it."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented."
        ) from None


def _check_server_ssl(ssl: object, ssl_handshake_timeout: object, shutdown: object) -> None:
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    check_ssl_arguments(ssl, ssl_handshake_timeout, shutdown)


async def _server_addrinfos(
    loop: EventLoop, host: str | None, port: Any, family: int, flags: int
) -> list[Any]:
    infos = await ensure_resolved(
        loop, (host, port), family=family, type=socket.SOCK_STREAM, flags=flags
    )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


def _bind_message(address: object, err: OSError) -> str:
    detail = str(err) if sys.version_info >= (3, 13) else err.strerror
    return f"error while attempting to bind on address {address!r}: {str(detail).lower()}"


async def _listening_sockets(
    loop: EventLoop,
    host: str | Iterable[str] | None,
    port: Any,
    family: int,
    flags: int,
    reuse_address: bool | None,
    reuse_port: bool | None,
    keep_alive: bool | None,
) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address ``host`` resolves to."""
    if reuse_address is None:
        reuse_address = os.name == "posix" and sys.platform != "cygwin"
    hosts: Iterable[str | None]
    if host == "":
        hosts = [None]
    elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
        hosts = [host]
    else:
        hosts = host
    resolved = await asyncio.gather(
        *[_server_addrinfos(loop, name, port, family, flags) for name in hosts]
    )
    # One socket per distinct address, however many host names lead to it; in resolution
    # order (asyncio's set has hash order, which would make virtual runs differ by hash seed).
    infos = list(dict.fromkeys(itertools.chain.from_iterable(resolved)))
    sockets: list[socket.socket] = []
    completed = False
    try:
        for af, socktype, proto, _, address in infos:
            try:
                sock = new_socket(loop, af, socktype, proto)
            except OSError:
                # Most likely a family this machine does not have.
                if loop._debug:
                    logger.warning(
                        "create_server() failed to create socket.socket(%r, %r, %r)",
                        af,
                        socktype,
                        proto,
                        exc_info=True,
                    )
                continue
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if reuse_port:
                set_reuseport(sock)
            if keep_alive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
            if HAS_IPV6 and af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # One socket per family: no dual-stack socket that would also take IPv4.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as err:
                message = _bind_message(address, err)
                if sys.version_info >= (3, 13) and err.errno == errno.EADDRNOTAVAIL:
                    # The family is not enabled here (bpo-30945): skip it.
                    sockets.pop()
                    sock.close()
                    if loop._debug:
                        logger.warning(message)
                    continue
                raise OSError(err.errno, message) from None
        if not sockets:
            raise OSError(f"could not bind on any address out of {[info[4] for info in infos]!r}")
        completed = True
    finally:
        if not completed:
            for sock in sockets:
                sock.close()
    return sockets


async def create_server(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    host: str | Iterable[str] | None = None,
    port: int | str | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: Any = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    keep_alive: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
) -> Server:
    """Listen on every address of ``host`` (a name or several) and ``port``, or on ``sock``."""
    if keep_alive is not None and sys.version_info < (3, 13):
        # keep_alive arrived in Python 3.13.
        raise TypeError("create_server() got an unexpected keyword argument 'keep_alive'")
    _check_server_ssl(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        check_ssl_socket(sock)
    self._check_closed()
    stream_driver(self)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sockets = await _listening_sockets(
            self, host, port, family, flags, reuse_address, reuse_port, keep_alive
        )
    else:
        if sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sockets = [sock]
    for listening in sockets:
        listening.setblocking(False)
    server = Server(
        self,
        sockets,
        protocol_factory,
        backlog,
        ssl_context=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    if self._debug:
        logger.info("%r is serving", server)
    return server


def _bound_unix_socket(loop: EventLoop, path: str | bytes) -> socket.socket:
    if sys.platform == "win32":
        raise NotImplementedError("Unix sockets are not available on this platform")
    sock = new_socket(loop, socket.AF_UNIX, socket.SOCK_STREAM)
    if not driver_owns_sockets(loop):
        remove_stale_socket(path)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


async def create_unix_server(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    cleanup_socket: bool | None = None,
) -> Server:
    """Listen on the Unix socket at ``path`` (a stale socket file there is replaced)."""
    if sys.platform == "win32":
        raise NotImplementedError("Unix sockets are not available on this platform")
    if sys.version_info < (3, 13):
        if cleanup_socket is not None:
            # cleanup_socket arrived in Python 3.13; before it, nothing was cleaned up.
            raise TypeError(
                "create_unix_server() got an unexpected keyword argument 'cleanup_socket'"
            )
        cleanup_socket = False
    elif cleanup_socket is None:
        cleanup_socket = True
    _check_server_ssl(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    self._check_closed()
    stream_driver(self)
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        sock = _bound_unix_socket(self, os.fspath(path))
    else:
        if sock is None:
            raise ValueError("path was not specified, and no sock specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
    cleanup: dict[socket.socket, int] = {}
    if cleanup_socket and isinstance(sock, socket.socket):
        bound = sock.getsockname()
        if bound and bound[0] not in (0, "\x00"):
            try:
                cleanup[sock] = os.stat(bound).st_ino
            except FileNotFoundError:
                pass
    sock.setblocking(False)
    server = Server(
        self,
        [sock],
        protocol_factory,
        backlog,
        cleanup,
        ssl_context=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    return server


#: name -> method, for the compat loop to place in its class body.
SERVER_METHODS: dict[str, Callable[..., Any]] = {
    "create_server": create_server,
    "create_unix_server": create_unix_server,
}
