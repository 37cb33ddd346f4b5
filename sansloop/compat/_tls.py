"""TLS for the compat loop: the core's TLS layer dressed as asyncio's, and ``loop.start_tls``.

All the behaviour is :class:`sansloop.core.TLSLayer`'s.  This module adds what needs asyncio:
``isinstance`` of ``asyncio.BufferedProtocol`` (the plain transport then receives straight
into the layer's buffer) and ``asyncio.Transport``, the unclosed-transport warning, the
default ``SSLContext`` for ``ssl=True``, and the places where a connection gets its TLS layer:
a new socket (client, server, accepted socket) or an existing transport (``start_tls``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import warnings
from asyncio import constants
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import TLSLayer, TLSTransportCore

from ._transports import SocketTransport

if TYPE_CHECKING:
    from ._loop import EventLoop

__all__ = ["SSLProtocol", "SSLTransport", "make_tls_transport", "start_tls", "tls_context"]


class SSLTransport(TLSTransportCore, asyncio.Transport):
    """What a TLS application writes to (asyncio's ``_SSLProtocolTransport``)."""

    #: start_tls() may layer TLS over TLS; sendfile() falls back to reading and writing.
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(self, layer: SSLProtocol) -> None:
        TLSTransportCore.__init__(self, layer)
        self._loop = layer._host

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {state}>"

    @property
    def _ssl_protocol(self) -> TLSLayer | None:
        # asyncio's name for the layer; libraries and CPython's tests reach it through here.
        return self._layer

    def _test__append_write_backlog(self, data: bytes) -> None:
        # asyncio's test hook (test_ssl fills the backlog with it): queue without writing.
        layer = self._layer
        assert layer is not None
        layer._backlog.append(data)
        layer._backlog_size += len(data)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed:
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)


class SSLProtocol(TLSLayer, asyncio.BufferedProtocol):
    """The plain transport's protocol (asyncio's ``SSLProtocol``)."""

    def _make_app_transport(self) -> TLSTransportCore:
        return SSLTransport(self)

    _handshake_start_time: float | None = None

    def _is_buffered(self, protocol: Any) -> bool:
        return isinstance(protocol, asyncio.BufferedProtocol)

    def _log_handshake_start(self) -> None:
        # asyncio's debug log, with the duration it reports at the end.
        self._handshake_start_time = self._host.time()  # type: ignore[attr-defined]
        super()._log_handshake_start()

    def _log_handshake_done(self) -> None:
        start = self._handshake_start_time
        if start is None:
            super()._log_handshake_done()
            return
        elapsed = self._host.time() - start  # type: ignore[attr-defined]
        logging.getLogger("asyncio").debug("%r: SSL handshake took %.1f ms", self, elapsed * 1e3)


def tls_context(ssl_arg: Any, server_side: bool, server_hostname: str | None) -> ssl.SSLContext:
    """The context for ``ssl=``: the caller's, or (``ssl=True``) a default client context."""
    if ssl_arg and not isinstance(ssl_arg, bool):
        return ssl_arg  # type: ignore[no-any-return]
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    context = ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


def make_tls_transport(
    loop: EventLoop,
    sock: socket.socket,
    protocol: asyncio.BaseProtocol,
    sslcontext: Any,
    waiter: asyncio.Future[None],
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    extra: dict[str, Any] | None = None,
    server: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> SSLTransport:
    """A TLS transport over the connected ``sock``; ``waiter`` completes with the handshake."""
    layer = SSLProtocol(
        loop,
        protocol,
        tls_context(sslcontext, server_side, server_hostname),
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    SocketTransport(loop, sock, layer, None, extra, server)
    transport = layer._app_transport
    assert isinstance(transport, SSLTransport)
    return transport


async def start_tls(
    self: EventLoop,
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> asyncio.Transport:
    """Upgrade ``transport`` to TLS; ``protocol`` uses the transport returned from then on."""
    if not isinstance(sslcontext, ssl.SSLContext):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
        )
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    waiter: asyncio.Future[None] = self.create_future()
    layer = SSLProtocol(
        self,
        protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        call_connection_made=False,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    # Nothing may reach the layer before its connection_made.
    transport.pause_reading()  # type: ignore[attr-defined]
    transport.set_protocol(layer)
    made = self.call_soon(layer.connection_made, transport)
    resumed = self.call_soon(transport.resume_reading)  # type: ignore[attr-defined]
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    app_transport = layer._app_transport
    assert isinstance(app_transport, SSLTransport)
    return app_transport


#: name -> method, for the compat loop to place in its class body.
TLS_METHODS: dict[str, Callable[..., Any]] = {"start_tls": start_tls}
