"""asyncio's pipe transports as state machines: a read end and a write end.

Pipes (and FIFOs, ptys, character devices) follow rules of their own in asyncio, different
enough from sockets' that they are two small subclasses rather than options:

* the **read end** delivers ``data_received`` straight from the driver's callback (an
  exception there reaches the loop's handler, not the transport); at end of file it
  schedules ``eof_received`` and then ``connection_lost`` whatever ``eof_received``
  returns; a read error is fatal, and ``EIO`` (what a pty's master reads once the slave
  closed) is logged only in debug mode;
* the **write end** buffers and flow-controls through :class:`StreamTransportCore`;
  ``write_eof`` *is* closing (a pipe has no half-close), a write after closing or after the
  connection was lost is dropped (logged from the fifth on), and a driver that watches the
  write end for readability (the peer closing shows up as "readable") reports that through
  :meth:`PipeWriteTransportCore.received`; with bytes still buffered that is a
  ``BrokenPipeError``.

Nothing here makes a system call: the driver's :class:`PipeChannel` reads and writes.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._stream import LOG_THRESHOLD_FOR_CONNLOST_WRITES, StreamTransportCore
from ._transport import Channel, TransportCore, TransportHost, log

__all__ = ["PipeChannel", "PipeReadTransportCore", "PipeSink", "PipeWriteTransportCore"]

#: The ``errno`` of a pty master read once the slave side closed (the same on every Unix
#: that has ptys; the core may not import ``errno``).
_EIO = 5


class PipeChannel(Channel, Protocol):
    """The I/O a pipe transport asks of its driver (beyond :class:`Channel`'s).

    On a write end, :meth:`Channel.start_reading` means "tell me when the peer closes" and
    the channel reports that as ``sink.received(b"")`` without reading anything.
    """

    def send_now(self, data: bytes | bytearray | memoryview) -> int:
        """Write what can go at once; may raise ``BlockingIOError`` (nothing went)."""
        ...

    def want_write(self) -> None:
        """Bytes remain: write :meth:`PipeSink.pending` as the pipe allows."""
        ...


class PipeSink(Protocol):
    """What a driver's pipe channel reports to (either pipe core)."""

    #: Bytes to ask of each read.
    max_size: int

    def pending(self) -> bytes | memoryview: ...

    def sent(self, n: int) -> None: ...

    def write_failed(self, exc: BaseException) -> None: ...

    def received(self, data: bytes) -> None: ...

    def read_failed(self, exc: BaseException) -> None: ...


class PipeReadTransportCore(TransportCore):
    """asyncio's read pipe transport over a :class:`PipeChannel`."""

    #: Bytes asked of each read (asyncio's ``max_size``).
    max_size = 256 * 1024

    def __init__(
        self,
        host: TransportHost,
        channel: PipeChannel,
        protocol: Any,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._channel = channel
        TransportCore.__init__(self, host, channel, protocol, extra)

    def close(self) -> None:
        if not self._closing:
            self._force_close(None)

    # -- the sink -------------------------------------------------------------------------

    def pending(self) -> bytes | memoryview:
        raise RuntimeError("a read pipe has nothing to send")

    def sent(self, n: int) -> None:
        raise RuntimeError("a read pipe has nothing to send")

    def write_failed(self, exc: BaseException) -> None:
        raise RuntimeError("a read pipe has nothing to send")

    def received(self, data: bytes) -> None:
        """``data`` was read (empty: end of file).  The protocol's errors propagate."""
        if data:
            self._protocol.data_received(data)
            return
        if self._debug():
            log().info("%r was closed by peer", self)
        self._closing = True
        self._channel.stop_reading()
        host = self._host
        assert host is not None
        host.call_soon(self._protocol.eof_received)
        host.call_soon(self._call_connection_lost, None)

    def read_failed(self, exc: BaseException) -> None:
        self._fatal_error(exc, "Fatal read error on pipe transport")

    # -- the end --------------------------------------------------------------------------

    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on pipe transport"
    ) -> None:
        if isinstance(exc, OSError) and exc.errno == _EIO:
            if self._debug():
                log().debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(message, exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        host = self._host
        if host is None:
            return
        self._closing = True
        self._channel.stop_reading()
        host.call_soon(self._call_connection_lost, exc)


class PipeWriteTransportCore(StreamTransportCore):
    """asyncio's write pipe transport over a :class:`PipeChannel`.

    ``watch_peer``: also watch the pipe for "readable", which on a write end means the
    reader went away (asyncio does so for FIFOs and sockets, not character devices).
    """

    def __init__(
        self,
        host: TransportHost,
        channel: PipeChannel,
        protocol: Any,
        extra: dict[str, Any] | None = None,
        watch_peer: bool = True,
    ) -> None:
        StreamTransportCore.__init__(self, host, channel, protocol, extra)  # type: ignore[arg-type]
        self._watch_peer = watch_peer
        #: Writes dropped because the pipe was closing or lost (for asyncio's warning).
        self._dropped = 0

    def start(self, on_made: Any = None) -> None:
        """Schedule ``connection_made``, the watch for the peer closing, then ``on_made``."""
        host = self._host
        assert host is not None
        host.call_soon(self._protocol.connection_made, self)
        if self._watch_peer:
            host.call_soon(self._start_watching)
        if on_made is not None:
            host.call_soon(on_made)

    def _start_watching(self) -> None:
        if self._host is not None:
            self._channel.start_reading()

    def _is_buffered(self, protocol: Any) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            # asyncio asserts here; the same exception, also under -O.
            raise AssertionError(repr(data))
        if not data:
            return
        if self._conn_lost or self._closing:
            # asyncio counts these in its _conn_lost; a separate count here, because the
            # core's _conn_lost means "lost" and would stop a close() from flushing.
            if self._conn_lost + self._dropped >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                log().warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._dropped += 1
            return
        if not self._buffer:
            try:
                n = self._channel.send_now(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if n == (len(data) if type(data) is bytes else memoryview(data).nbytes):
                return
            self._enqueue(data, n)
            self._channel.want_write()
        else:
            self._enqueue(data, 0)
        self._maybe_pause_protocol()

    def write_eof(self) -> None:
        """A pipe cannot half-close: flush, then close."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._channel.stop_reading()
            host = self._host
            assert host is not None
            host.call_soon(self._call_connection_lost, None)

    def close(self) -> None:
        if not self._released_already and not self._closing:
            self.write_eof()

    # -- the sink -------------------------------------------------------------------------

    def write_failed(self, exc: BaseException) -> None:
        if self._conn_lost:
            return
        self._buffer.clear()
        self._buffer_size = 0
        self._conn_lost += 1
        self._channel.stop_write()
        self._fatal_error(exc, "Fatal write error on pipe transport")

    def received(self, data: bytes) -> None:
        """The write end became readable: the reader has gone."""
        if self._debug():
            log().info("%r was closed by peer", self)
        self._force_close(BrokenPipeError() if self._buffer else None)

    def read_failed(self, exc: BaseException) -> None:
        self.received(b"")

    # -- the end --------------------------------------------------------------------------

    def _fatal_error(
        self, exc: BaseException, message: str = "Fatal error on pipe transport"
    ) -> None:
        TransportCore._fatal_error(self, exc, message)

    def _force_close(self, exc: BaseException | None) -> None:
        host = self._host
        if host is None:
            return
        self._closing = True
        if self._buffer:
            self._channel.stop_write()
        self._buffer.clear()
        self._buffer_size = 0
        self._channel.stop_reading()
        host.call_soon(self._call_connection_lost, exc)
