"""The TLS state machine: one ``ssl.SSLObject`` between two transports, for every driver.

:class:`TLSLayer` is the *protocol* of a plain stream transport (whatever driver carries it)
and owns the *transport* the application sees (:class:`TLSTransportCore`).  Ciphertext from
the plain transport goes into an incoming ``ssl.MemoryBIO``; the ``SSLObject`` turns it into
plaintext for the application, and application writes into ciphertext in an outgoing
``MemoryBIO`` that is written to the plain transport.  No socket, no clock: the two timeouts
(handshake, shutdown) are timers asked of the host loop (``call_later``), so the same code
runs over the selectors driver, the virtual network and trio.

Theory of operation (asyncio's ``sslproto`` behaviour, which applications depend on):

* **Handshake.**  ``connection_made`` of the plain transport starts it and arms the handshake
  timer; every arrival of ciphertext drives ``do_handshake`` again.  Success records
  ``peercert``/``cipher``/``compression``/``ssl_object``, calls the application's
  ``connection_made`` (unless ``start_tls`` made it already) and wakes the waiter; failure,
  EOF (``ConnectionResetError``) or the timer (``ConnectionAbortedError``) closes the plain
  transport with the error and fails the waiter.  The application never hears of a
  connection whose handshake failed.
* **Data.**  Application writes wait in a backlog until the handshake is done; plaintext is
  read until the ``SSLObject`` has nothing more and handed over in one ``data_received`` (or
  into the ``BufferedProtocol``'s buffer).
* **Shutdown.**  ``close()`` flushes: reading stops being delivered, the backlog is written,
  ``close_notify`` is sent and the layer waits (under the shutdown timer, whose expiry closes
  with ``TimeoutError``) for the peer's; then the plain transport is closed.  The peer's
  ``close_notify``, or a plain EOF without one (asyncio treats an unclean EOF as an EOF), gives
  the application ``eof_received`` then ``connection_lost(None)``.
* **Flow control across the layer.**  The application's write buffer is the backlog plus the
  ciphertext not yet handed to the plain transport, which stops taking ciphertext while it is
  paused (``pause_writing`` from below): a slow peer pauses the application.  Reading: while
  the application pauses reading, ciphertext accumulates in the incoming BIO, and the plain
  transport is paused once that passes the read high-water mark.

The states and the only transitions allowed between them are the table in ``_tls_states.py``.

``ssl`` is imported when the first layer is made, not with the core: importing ``ssl`` loads
``socket``, and ``import sansloop.core`` stays free of I/O modules.  Only its pure pieces
(``MemoryBIO``, ``SSLObject`` through ``SSLContext.wrap_bio``, the exceptions) are used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._tls_states import (
    READ_HIGH_WATER_KIB,
    TRANSITIONS,
    WRITE_HIGH_WATER_KIB,
    AppState,
    LowerTransport,
    SSLHandshakeTimeout,
    TLSHost,
    TLSState,
    TLSWaiter,
    check_timeouts,
    flow_control_limits,
)
from ._tls_transport import TLSTransportCore
from ._transport import LOG_THRESHOLD_FOR_CONNLOST_WRITES, log

if TYPE_CHECKING:
    import ssl

__all__ = ["TLSLayer"]


class TLSLayer:
    """asyncio's ``SSLProtocol``: the plain transport's protocol; see the module docstring.

    The compat layer mixes this with ``asyncio.BufferedProtocol`` (the plain transport then
    receives straight into :meth:`get_buffer`) and supplies :meth:`_make_app_transport`.
    """

    #: Bytes asked of each receive; plaintext is decrypted into the same buffer.
    max_size = 256 * 1024

    def __init__(
        self,
        host: TLSHost,
        app_protocol: Any,
        sslcontext: ssl.SSLContext,
        waiter: TLSWaiter | None,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        ssl_handshake_timeout, ssl_shutdown_timeout = check_timeouts(
            ssl_handshake_timeout, ssl_shutdown_timeout
        )
        import ssl  # Here, not at the top: see the module docstring.

        # What SSLObject raises when it needs more ciphertext (or the BIO is drained), and
        # its failures; kept here because the module does not import ssl.
        self._again = (ssl.SSLWantReadError, ssl.SSLSyscallError)
        self._ssl_error = ssl.SSLError
        self._cert_error = ssl.CertificateError
        self._zero_return = ssl.SSLZeroReturnError
        self._host = host
        self._buf = bytearray(self.max_size)
        self._view = memoryview(self._buf)
        self._server_side = server_side
        hostname = server_hostname if server_hostname and not server_side else None
        self._sslcontext = sslcontext
        self._extra: dict[str, Any] = {"sslcontext": sslcontext}
        self._backlog: deque[bytes | bytearray | memoryview] = deque()
        self._backlog_size = 0
        self._waiter = waiter
        self._handshake_timeout = ssl_handshake_timeout
        self._shutdown_timeout = ssl_shutdown_timeout
        self._handshake_timer: Any = None
        self._shutdown_timer: Any = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname
        )
        self._state = TLSState.UNWRAPPED
        self._app_state = AppState.INIT if call_connection_made else AppState.MADE
        self._conn_lost = 0
        self._transport: LowerTransport | None = None
        self._eof = False
        # Flow control, in both directions and on both sides of the layer.
        self._lower_writing_paused = False  # the plain transport's buffer is full
        self._app_reading_paused = False  # the application paused reading
        self._lower_reading_paused = False  # we paused the plain transport
        self._app_writing_paused = False  # we paused the application
        self._read_high, self._read_low = flow_control_limits(None, None, READ_HIGH_WATER_KIB)
        self._write_high, self._write_low = flow_control_limits(None, None, WRITE_HIGH_WATER_KIB)
        self._app_protocol: Any = None
        self._app_buffered = False
        self._set_app_protocol(app_protocol)
        self._app_transport: TLSTransportCore | None = self._make_app_transport()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self._state.value} app={self._app_state.value}>"

    # -- hooks for the compat layer -------------------------------------------------------

    def _make_app_transport(self) -> TLSTransportCore:
        return TLSTransportCore(self)

    def _is_buffered(self, protocol: Any) -> bool:
        return hasattr(protocol, "get_buffer") and hasattr(protocol, "buffer_updated")

    def _log_handshake_start(self) -> None:
        """Debug mode: the handshake begins (the compat layer adds the time)."""
        log().debug("%r starts SSL handshake", self)

    def _log_handshake_done(self) -> None:
        """Debug mode: the handshake succeeded (the compat layer adds how long it took)."""
        log().debug("%r: SSL handshake done", self)

    # -- the application side -------------------------------------------------------------

    def _set_app_protocol(self, protocol: Any) -> None:
        self._app_protocol = protocol
        self._app_buffered = self._is_buffered(protocol)

    def _wake_waiter(self, exc: BaseException | None = None) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.cancelled():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def _set_state(self, new: TLSState) -> None:
        if new is not TLSState.UNWRAPPED and (self._state, new) not in TRANSITIONS:
            raise RuntimeError(f"cannot switch state from {self._state} to {new}")
        self._state = new

    # -- the plain transport's protocol ---------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """The plain connection (a :class:`LowerTransport`) is up: start the handshake."""
        self._transport = transport
        if self._host.get_debug():
            self._log_handshake_start()
        self._set_state(TLSState.DO_HANDSHAKE)
        self._handshake_timer = self._host.call_later(
            self._handshake_timeout, self._check_handshake_timeout
        )
        self._do_handshake()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The plain connection is gone: tell the application (if it was told it began)."""
        self._backlog.clear()
        self._backlog_size = 0
        self._outgoing.read()
        self._conn_lost += 1
        app_transport = self._app_transport
        if app_transport is not None:
            app_transport._closed = True
        if self._state is not TLSState.DO_HANDSHAKE and self._app_state in (
            AppState.MADE,
            AppState.EOF,
        ):
            self._app_state = AppState.LOST
            self._host.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state(TLSState.UNWRAPPED)
        self._transport = None
        self._app_transport = None
        self._app_protocol = None
        self._wake_waiter(exc)
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._shutdown_timer = None

    def get_buffer(self, n: int) -> memoryview:
        """Where the plain transport receives ciphertext."""
        want = n if 0 < n <= self.max_size else self.max_size
        if len(self._buf) < want:
            self._buf = bytearray(want)
            self._view = memoryview(self._buf)
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` of ciphertext arrived in :meth:`get_buffer`."""
        self._incoming.write(self._view[:nbytes])
        self._advance()

    def data_received(self, data: bytes) -> None:
        """Ciphertext arrived (for plain transports that do not fill buffers)."""
        self._incoming.write(data)
        self._advance()

    def _advance(self) -> None:
        state = self._state
        if state is TLSState.WRAPPED:
            self._do_read()
        elif state is TLSState.DO_HANDSHAKE:
            self._do_handshake()
        elif state is TLSState.FLUSHING:
            self._do_flush()
        elif state is TLSState.SHUTDOWN:
            self._do_shutdown()

    def eof_received(self) -> bool | None:
        """The peer half-closed the plain connection (maybe without ``close_notify``)."""
        self._eof = True
        try:
            if self._host.get_debug():
                log().debug("%r received EOF", self)
            state = self._state
            if state is TLSState.DO_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError())
            elif state is TLSState.WRAPPED:
                self._set_state(TLSState.FLUSHING)
                if self._app_reading_paused:
                    return True  # Keep the plain transport until the application reads.
                self._do_flush()
            elif state is TLSState.FLUSHING:
                self._do_write()
                self._set_state(TLSState.SHUTDOWN)
                self._do_shutdown()
            elif state is TLSState.SHUTDOWN:
                self._do_shutdown()
        except Exception:
            if self._transport is not None:
                self._transport.close()
            raise
        return None

    def pause_writing(self) -> None:
        """The plain transport's buffer is full: keep ciphertext in the outgoing BIO."""
        self._lower_writing_paused = True

    def resume_writing(self) -> None:
        """The plain transport's buffer drained: pass the ciphertext on."""
        self._lower_writing_paused = False
        self._process_outgoing()

    # -- handshake ------------------------------------------------------------------------

    def _check_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self._state is TLSState.DO_HANDSHAKE:
            self._fatal_error(
                SSLHandshakeTimeout(
                    f"SSL handshake is taking longer than {self._handshake_timeout} seconds: "
                    "aborting the connection"
                )
            )

    def _do_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except self._again:
            self._process_outgoing()
        except self._ssl_error as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    def _on_handshake_complete(self, failure: BaseException | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        sslobj = self._sslobj
        try:
            if failure is not None:
                raise failure
            self._set_state(TLSState.WRAPPED)
            peercert = sslobj.getpeercert()
        except Exception as exc:
            failure = None  # No cycle through this frame.
            self._set_state(TLSState.UNWRAPPED)
            if isinstance(exc, self._cert_error):
                message = "SSL handshake failed on verifying the certificate"
            else:
                message = "SSL handshake failed"
            self._fatal_error(exc, message)
            self._wake_waiter(exc)
            return
        if self._host.get_debug():
            self._log_handshake_done()
        self._extra.update(
            peercert=peercert,
            cipher=sslobj.cipher(),
            compression=sslobj.compression(),
            ssl_object=sslobj,
        )
        if self._app_state is AppState.INIT:
            self._app_state = AppState.MADE
            self._app_protocol.connection_made(self._app_transport)
        self._wake_waiter()
        self._do_read()

    # -- shutdown -------------------------------------------------------------------------

    def _start_shutdown(self) -> None:
        if self._state in (TLSState.FLUSHING, TLSState.SHUTDOWN, TLSState.UNWRAPPED):
            return
        if self._app_transport is not None:
            self._app_transport._closed = True
        if self._state is TLSState.DO_HANDSHAKE:
            self._abort(None)
            return
        self._set_state(TLSState.FLUSHING)
        self._shutdown_timer = self._host.call_later(
            self._shutdown_timeout, self._check_shutdown_timeout
        )
        self._do_flush()

    def _check_shutdown_timeout(self) -> None:
        self._shutdown_timer = None
        if self._state in (TLSState.FLUSHING, TLSState.SHUTDOWN) and self._transport:
            self._transport._force_close(TimeoutError("SSL shutdown timed out"))

    def _do_flush(self) -> None:
        self._do_read()
        self._set_state(TLSState.SHUTDOWN)
        self._do_shutdown()

    def _do_shutdown(self) -> None:
        try:
            if not self._eof:
                self._discard_appdata()
                self._sslobj.unwrap()
        except self._again:
            self._process_outgoing()
        except self._ssl_error as exc:
            self._on_shutdown_complete(exc)
        else:
            self._process_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)

    def _discard_appdata(self) -> None:
        """Drop application data that arrives while closing (the application asked for no
        more).  Without this, data the peer sent before it saw our close_notify makes
        ``unwrap`` fail with APPLICATION_DATA_AFTER_CLOSE_NOTIFY, and the application gets
        that error instead of a clean end (asyncio's behaviour; uvloop discards, as here).
        """
        read = self._sslobj.read
        size = self.max_size
        try:
            while read(size):
                pass
        except (*self._again, self._zero_return):
            pass  # No more for now, or the peer's close_notify: unwrap() takes it from here.

    def _on_shutdown_complete(self, failure: BaseException | None) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if failure is not None:
            self._fatal_error(failure)
        elif self._transport is not None:
            # Our close_notify goes even if the plain transport asked us to hold back
            # (asyncio leaves it in the BIO then, and the peer sees a bare end of stream).
            if self._outgoing.pending:
                self._transport.write(self._outgoing.read())
            self._host.call_soon(self._transport.close)

    def _abort(self, exc: BaseException | None) -> None:
        self._set_state(TLSState.UNWRAPPED)
        if self._transport is not None:
            self._transport._force_close(exc)

    # -- application data out -------------------------------------------------------------

    def _write_appdata(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        state = self._state
        if state is not TLSState.WRAPPED and state is not TLSState.DO_HANDSHAKE:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                log().warning("SSL connection is closed")
            self._conn_lost += 1
            return
        backlog = self._backlog
        for data in chunks:
            # Kept as bytes: the caller may reuse a bytearray once write() returns.
            chunk = data if type(data) is bytes else bytes(data)
            backlog.append(chunk)
            self._backlog_size += len(chunk)
        if state is TLSState.WRAPPED:
            try:
                self._do_write()
            except Exception as exc:
                self._fatal_error(exc, "Fatal error on SSL protocol")

    def _write_one(self, data: bytes | bytearray | memoryview) -> None:
        """One write (the usual case): straight into the ``SSLObject`` if nothing waits."""
        if self._state is not TLSState.WRAPPED or self._backlog:
            self._write_appdata((data,))
            return
        try:
            try:
                count = self._sslobj.write(data)
            except self._again:
                count = 0
            size = len(data)
            if count < size:
                self._backlog.append(bytes(memoryview(data)[count:]))
                self._backlog_size += size - count
            self._process_outgoing()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _do_write(self) -> None:
        backlog = self._backlog
        write = self._sslobj.write
        try:
            while backlog:
                data = backlog[0]
                count = write(data)
                size = len(data)
                if count < size:
                    backlog[0] = memoryview(data)[count:]
                    self._backlog_size -= count
                else:
                    backlog.popleft()
                    self._backlog_size -= size
        except self._again:
            pass
        self._process_outgoing()

    def _process_outgoing(self) -> None:
        outgoing = self._outgoing
        if outgoing.pending and not self._lower_writing_paused and self._transport is not None:
            self._transport.write(outgoing.read())
        self._control_app_writing()

    # -- application data in --------------------------------------------------------------

    def _do_read(self) -> None:
        if self._state is not TLSState.WRAPPED and self._state is not TLSState.FLUSHING:
            return
        try:
            if not self._app_reading_paused:
                if self._app_buffered:
                    self._read_into_app_buffer()
                else:
                    self._read_copied()
                if self._backlog:
                    self._do_write()
                else:
                    self._process_outgoing()
            self._control_lower_reading()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _read_into_app_buffer(self) -> None:
        offset = 0
        count = 1
        buf = self._app_protocol.get_buffer(self._incoming.pending)
        wants = len(buf)
        # With a buffer, SSLObject.read returns the count (typeshed says bytes).
        read: Callable[[int, Any], int] = self._sslobj.read  # type: ignore[assignment]
        try:
            count = read(wants, buf)
            if count > 0:
                offset = count
                # A view: slicing a bytearray would read into a copy (asyncio does that
                # and loses the bytes).
                view = memoryview(buf)
                while offset < wants:
                    count = read(wants - offset, view[offset:])
                    if count <= 0:
                        break
                    offset += count
                else:
                    # The buffer is full and more may wait: read again on the next turn.
                    self._host.call_soon(self._do_read)
        except self._again:
            pass
        if offset > 0:
            self._app_protocol.buffer_updated(offset)
        if not count:  # close_notify
            self._call_eof_received()
            self._start_shutdown()

    def _read_copied(self) -> None:
        # Plaintext is decrypted into the receive buffer (its ciphertext is already in the
        # incoming BIO), then handed over as one bytes object: no allocation per record.
        sslobj = self._sslobj
        read: Callable[[int, Any], int] = sslobj.read  # type: ignore[assignment]
        incoming = self._incoming
        view = self._view
        size = len(view)
        offset = 0
        count = 1
        try:
            while True:
                count = read(size - offset, view[offset:])
                if not count:
                    break
                offset += count
                if offset == size:
                    # Full, and more may wait: read again on the next turn.
                    self._host.call_soon(self._do_read)
                    break
                # Nothing left to decrypt: another read would only raise SSLWantReadError
                # (OpenSSL reads one record at a time from the BIO, none ahead).
                if not incoming.pending and not sslobj.pending():
                    break
        except self._again:
            pass
        if offset:
            self._app_protocol.data_received(bytes(view[:offset]))
        if not count:  # close_notify
            self._call_eof_received()
            self._start_shutdown()

    def _call_eof_received(self) -> None:
        try:
            if self._app_state is AppState.MADE:
                self._app_state = AppState.EOF
                if self._app_protocol.eof_received():
                    log().warning("returning true from eof_received() has no effect when using ssl")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    # -- flow control ---------------------------------------------------------------------

    def _get_write_buffer_size(self) -> int:
        return self._outgoing.pending + self._backlog_size

    def _control_app_writing(self) -> None:
        size = self._outgoing.pending + self._backlog_size
        if size >= self._write_high and not self._app_writing_paused:
            self._app_writing_paused = True
            self._call_app_flow("pause_writing")
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app_flow("resume_writing")

    def _call_app_flow(self, name: str) -> None:
        try:
            getattr(self._app_protocol, name)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._host.call_exception_handler(
                {
                    "message": f"protocol.{name}() failed",
                    "exception": exc,
                    "transport": self._app_transport,
                    "protocol": self,
                }
            )

    def _set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._write_high, self._write_low = flow_control_limits(high, low, WRITE_HIGH_WATER_KIB)

    def _pause_reading(self) -> None:
        self._app_reading_paused = True

    def _resume_reading(self) -> None:
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._host.call_soon(self._resume)

    def _resume(self) -> None:
        state = self._state
        if state is TLSState.WRAPPED:
            self._do_read()
        elif state is TLSState.FLUSHING:
            self._do_flush()
        elif state is TLSState.SHUTDOWN:
            self._do_shutdown()

    def _control_lower_reading(self) -> None:
        size = self._incoming.pending
        transport = self._transport
        if transport is None:
            return
        if size >= self._read_high and not self._lower_reading_paused:
            self._lower_reading_paused = True
            transport.pause_reading()
        elif size <= self._read_low and self._lower_reading_paused:
            self._lower_reading_paused = False
            transport.resume_reading()

    def _set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._read_high, self._read_low = flow_control_limits(high, low, READ_HIGH_WATER_KIB)

    def _get_read_buffer_size(self) -> int:
        return self._incoming.pending

    # -- the end --------------------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        transport = self._transport
        if transport is not None:
            transport._force_close(exc)
        if isinstance(exc, OSError):
            # The peer's doing (ssl.SSLError is an OSError too): logged only in debug mode.
            if self._host.get_debug():
                log().debug("%r: %s", self, message, exc_info=True)
        elif isinstance(exc, Exception):  # Not a cancellation.
            self._host.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": transport,
                    "protocol": self,
                }
            )
