"""The stream transport state machine, shared by every driver.

One implementation of asyncio's stream transport: write buffering, water marks with
``pause_writing``/``resume_writing``, reading paused and resumed, ``write_eof`` and
half-close, ``close`` that flushes, ``abort`` that does not, ``connection_lost`` exactly
once, and ``BufferedProtocol`` reads.

It makes no system call.  The I/O goes through a :class:`StreamChannel` that a driver
supplies, and the driver reports back through the transport's *sink* methods
(:meth:`StreamTransportCore.pending`, :meth:`~StreamTransportCore.sent`,
:meth:`~StreamTransportCore.received` ...).  The channel is shaped for both I/O models:

* a readiness driver (selectors, trio, the virtual network) answers :meth:`~StreamChannel.
  send_now` with a real non-blocking ``send``; when bytes remain, :meth:`~StreamChannel.
  want_write` makes it watch the descriptor, and each time it is writable it sends
  :meth:`~StreamTransportCore.pending` and reports :meth:`~StreamTransportCore.sent`;
* a completion driver (IOCP) answers ``send_now`` with 0 and, on ``want_write``, submits
  ``pending()`` to the kernel, reporting ``sent(n)`` from the completion.

Either way the bytes offered stay untouched until reported sent: the buffer is a queue of
immutable chunks.  Protocol callbacks are called directly, from inside the driver's ready
callback, exactly where asyncio's selector transport calls them, so callback order matches
asyncio's; ``connection_made`` and ``connection_lost`` are scheduled through the host loop's
``call_soon``, as asyncio does.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, Protocol

from ._transport import (
    LOG_THRESHOLD_FOR_CONNLOST_WRITES,
    Channel,
    TransportCore,
    TransportHost,
    log,
)

__all__ = [
    "LOG_THRESHOLD_FOR_CONNLOST_WRITES",
    "StreamChannel",
    "StreamSink",
    "StreamTransportCore",
    "TransportHost",
    "Waiter",
]

#: Chunks coalesced into one send when several small writes queued up.
_COALESCE_LIMIT: Final = 256 * 1024


class Waiter(Protocol):
    """A future-like object woken when the write buffer drains (sendfile, start_tls)."""

    def done(self) -> bool: ...

    def set_result(self, result: None) -> None: ...

    def set_exception(self, exc: BaseException) -> None: ...


class StreamChannel(Channel, Protocol):
    """The I/O a stream transport asks of its driver (beyond :class:`Channel`'s)."""

    def send_now(self, data: bytes | bytearray | memoryview) -> int:
        """Send what can go at once; may raise ``BlockingIOError`` (nothing went)."""
        ...

    def want_write(self) -> None:
        """Bytes remain: send :meth:`StreamTransportCore.pending` as the socket allows."""
        ...

    def shutdown_write(self) -> None:
        """Half-close: tell the peer no more bytes follow."""
        ...


class StreamSink(Protocol):
    """What a driver's channel reports to (a :class:`StreamTransportCore`)."""

    #: Bytes to ask of each receive when not :attr:`reads_into_buffer`.
    max_size: int
    #: Receive into :meth:`recv_buffer` (``BufferedProtocol``) rather than as new bytes.
    reads_into_buffer: bool

    def pending(self) -> bytes | memoryview: ...

    def sent(self, n: int) -> None: ...

    def write_failed(self, exc: BaseException) -> None: ...

    def received(self, data: bytes) -> None: ...

    def recv_buffer(self) -> Any: ...

    def received_into(self, nbytes: int) -> None: ...

    def read_failed(self, exc: BaseException) -> None: ...


class _Server(Protocol):
    def _attach(self, transport: Any) -> None: ...

    def _detach(self, transport: Any) -> None: ...


class StreamTransportCore(TransportCore):
    """asyncio's ``Transport`` behaviour over a :class:`StreamChannel`.

    The compat layer mixes this with ``asyncio.Transport`` (for ``isinstance``) and adds
    what needs the OS (socket details for ``get_extra_info``, the unclosed-transport
    warning).  Subclasses override :meth:`_released` to learn when the transport is done.
    """

    #: Bytes asked of each receive for a plain ``Protocol`` (asyncio's ``max_size``).
    max_size = 256 * 1024

    def __init__(
        self,
        host: TransportHost,
        channel: StreamChannel,
        protocol: Any,
        extra: dict[str, Any] | None = None,
        server: _Server | None = None,
    ) -> None:
        self._channel = channel
        self.reads_into_buffer = False
        TransportCore.__init__(self, host, channel, protocol, extra)
        self._server = server
        self._buffer: deque[bytes | memoryview] = deque()
        self._buffer_size = 0
        self._eof = False
        self._empty_waiter: Waiter | None = None
        if server is not None:
            server._attach(self)

    # -- the transport's public methods ---------------------------------------------------

    def set_protocol(self, protocol: Any) -> None:
        self.reads_into_buffer = self._is_buffered(protocol)
        TransportCore.set_protocol(self, protocol)

    def _is_buffered(self, protocol: Any) -> bool:
        """Whether ``protocol`` is a ``BufferedProtocol`` (the compat layer asks asyncio)."""
        return hasattr(protocol, "get_buffer") and hasattr(protocol, "buffer_updated")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                log().warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = self._channel.send_now(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            if n == (len(data) if type(data) is bytes else memoryview(data).nbytes):
                return
            self._enqueue(data, n)
            self._channel.want_write()
        else:
            self._enqueue(data, 0)
        self._maybe_pause_protocol()

    def _enqueue(self, data: bytes | bytearray | memoryview, start: int) -> None:
        # Keep only immutable chunks: the caller may reuse a bytearray once write() returns,
        # and a completion driver may still be reading an earlier chunk.
        chunk: bytes | memoryview
        if type(data) is bytes:
            chunk = memoryview(data)[start:] if start else data
        else:
            chunk = memoryview(data).cast("B")[start:].tobytes()
        self._buffer.append(chunk)
        self._buffer_size += len(chunk)

    def writelines(self, list_of_data: Any) -> None:
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._channel.shutdown_write()

    def can_write_eof(self) -> bool:
        return True

    # -- the sink: what the driver reports ------------------------------------------------

    def pending(self) -> bytes | memoryview:
        """The bytes to send next (several small chunks are joined into one)."""
        buffer = self._buffer
        head = buffer[0]
        if len(buffer) > 1 and len(head) < _COALESCE_LIMIT:
            parts = [buffer.popleft()]
            size = len(head)
            while buffer and size + len(buffer[0]) <= _COALESCE_LIMIT:
                chunk = buffer.popleft()
                parts.append(chunk)
                size += len(chunk)
            head = b"".join(parts)
            buffer.appendleft(head)
        return head

    def sent(self, n: int) -> None:
        """``n`` bytes of :meth:`pending` have left."""
        if self._conn_lost:
            return
        if n:
            self._consume(n)
        self._maybe_resume_protocol()  # May write more.
        if not self._buffer:
            self._channel.stop_write()
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._channel.shutdown_write()

    def _consume(self, n: int) -> None:
        buffer = self._buffer
        self._buffer_size -= n
        while n:
            chunk = buffer[0]
            size = len(chunk)
            if size <= n:
                buffer.popleft()
                n -= size
            else:
                buffer[0] = memoryview(chunk)[n:]
                break

    def write_failed(self, exc: BaseException) -> None:
        """Sending failed; the connection is lost."""
        if self._conn_lost:
            return
        self._channel.stop_write()
        self._buffer.clear()
        self._buffer_size = 0
        self._fatal_error(exc, "Fatal write error on socket transport")
        if self._empty_waiter is not None:
            self._empty_waiter.set_exception(exc)

    def received(self, data: bytes) -> None:
        """``data`` arrived (empty: the peer will send no more)."""
        if not data:
            self._eof_received()
            return
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def recv_buffer(self) -> Any:
        """The protocol's buffer to receive into, or None if asking for it failed."""
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return None
        return buf

    def received_into(self, nbytes: int) -> None:
        """``nbytes`` arrived in the buffer :meth:`recv_buffer` gave (0: end of stream)."""
        if not nbytes:
            self._eof_received()
            return
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def read_failed(self, exc: BaseException) -> None:
        """Receiving failed; the connection is lost."""
        self._fatal_error(exc, "Fatal read error on socket transport")

    def _eof_received(self) -> None:
        if self._debug():
            log().debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # The protocol may still write, but nothing more can be read.
            self._channel.stop_reading()
        else:
            self.close()

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._channel.stop_write()
        if not self._closing:
            self._closing = True
            self._channel.stop_reading()
        self._conn_lost += 1
        assert self._host is not None
        self._host.call_soon(self._call_connection_lost, exc)

    def _let_go(self) -> None:
        server = self._server
        if server is not None:
            self._server = None
            server._detach(self)
        waiter = self._empty_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("Connection is closed by peer"))
