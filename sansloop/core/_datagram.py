"""The datagram transport state machine, shared by every driver.

One implementation of asyncio's datagram transport (``_SelectorDatagramTransport``): a queue of
``(bytes, address)`` datagrams waiting for the socket, its size counted for flow control
(``pause_writing``/``resume_writing``), ``error_received`` for the socket errors a datagram
socket reports (ICMP "port unreachable" comes back as ``ConnectionRefusedError`` on the next
call), connected and unconnected endpoints, ``close`` that flushes the queue, ``abort`` that
does not, ``connection_lost`` exactly once.

It makes no system call.  The I/O goes through a :class:`DatagramChannel` that a driver
supplies, and the driver reports back through the transport's *sink* methods
(:class:`DatagramSink`):

* sending is tried at once (:meth:`DatagramChannel.send_now` / :meth:`~DatagramChannel.
  send_to_now`); when the channel answers ``BlockingIOError`` the datagram is queued and
  :meth:`~DatagramChannel.want_write` asks the driver to call :meth:`DatagramTransportCore.
  send_ready` whenever the channel can take datagrams again.  ``send_ready`` offers the queued
  datagrams, in order, until the channel blocks again: for a readiness driver that is "the
  socket is writable"; a completion driver accepts one datagram per ``send_now`` (raising
  ``BlockingIOError`` while one is in flight), calls ``send_ready`` when it completes, and
  reports a failed completion through :meth:`~DatagramTransportCore.send_failed`;
* reading is started and stopped on the channel; each datagram arrives through
  :meth:`~DatagramTransportCore.received` and each receive error through
  :meth:`~DatagramTransportCore.receive_failed`.

Protocol callbacks are called directly, from inside the driver's callbacks, exactly where
asyncio's selector transport calls them (so an exception raised by ``datagram_received`` or
``error_received`` reaches the loop's exception handler the same way); ``connection_made`` and
``connection_lost`` are scheduled through the host loop's ``call_soon``, as asyncio does.

Two rules changed in Python 3.13 and are constructor arguments here: empty datagrams are sent
(``send_empty``; earlier versions silently drop them) and every queued datagram counts 8 more
bytes, for its header, in ``get_write_buffer_size()`` (``header_size``).  The count is taken
off again when a datagram leaves, as in CPython's fix of the 3.13.0 accounting (gh-135444).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ._stream import LOG_THRESHOLD_FOR_CONNLOST_WRITES, TransportHost

__all__ = ["DatagramChannel", "DatagramSink", "DatagramTransportCore"]


class DatagramChannel(Protocol):
    """The I/O a datagram transport asks of its driver; see the module docstring."""

    def send_now(self, data: bytes | bytearray | memoryview) -> None:
        """Send one datagram to the connected peer; ``BlockingIOError``: it must wait."""
        ...

    def send_to_now(self, data: bytes | bytearray | memoryview, address: Any) -> None:
        """Send one datagram to ``address``; ``BlockingIOError``: it must wait."""
        ...

    def want_write(self) -> None:
        """Datagrams are queued: call :meth:`DatagramSink.send_ready` when they can go."""
        ...

    def stop_write(self) -> None:
        """Nothing is queued any more (or the transport gave up): stop calling back."""
        ...

    def start_reading(self) -> None:
        """Deliver received datagrams through the sink until :meth:`stop_reading`."""
        ...

    def stop_reading(self) -> None:
        """Deliver nothing more (a delivery already queued is dropped)."""
        ...

    def close(self) -> None:
        """Release the socket.  Idempotent."""
        ...


class DatagramSink(Protocol):
    """What a driver's datagram channel reports to (a :class:`DatagramTransportCore`)."""

    #: Bytes to ask of each receive (asyncio's ``max_size``).
    max_size: int

    def send_ready(self) -> None: ...

    def send_failed(self, exc: BaseException) -> None: ...

    def received(self, data: bytes, address: Any) -> None: ...

    def receive_failed(self, exc: BaseException) -> None: ...


def _log() -> logging.Logger:
    # Looked up when needed: the core keeps no module-level state.
    return logging.getLogger("asyncio")


class DatagramTransportCore:
    """asyncio's ``DatagramTransport`` behaviour over a :class:`DatagramChannel`.

    ``address`` is the remote address the endpoint is fixed to (``remote_addr``), if any:
    ``sendto`` then refuses any other.  ``connected`` says whether the socket itself is
    connected (it has a peer name), so datagrams go out with ``send`` rather than ``sendto``;
    an endpoint made with ``allow_broadcast`` has an address but no connection.

    The compat layer mixes this with ``asyncio.DatagramTransport`` and adds what needs the
    OS.  Subclasses override :meth:`_released` to learn when the transport is done.
    """

    #: Bytes asked of each receive: larger datagrams are truncated (asyncio's ``max_size``).
    max_size = 256 * 1024

    def __init__(
        self,
        host: TransportHost,
        channel: DatagramChannel,
        protocol: Any,
        *,
        address: Any = None,
        connected: bool = False,
        extra: dict[str, Any] | None = None,
        header_size: int = 8,
        send_empty: bool = True,
    ) -> None:
        self._host: TransportHost | None = host
        self._channel = channel
        self._extra: dict[str, Any] = {} if extra is None else extra
        self._address = address
        self._connected = connected
        self._header_size = header_size
        self._send_empty = send_empty
        self._protocol: Any = None
        self._protocol_connected = False
        self.set_protocol(protocol)
        self._buffer: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._released_already = False
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024

    def start(self, on_made: Callable[[], object] | None = None) -> None:
        """Schedule ``connection_made``, then reading, then ``on_made`` (asyncio's order)."""
        host = self._host
        assert host is not None
        host.call_soon(self._protocol.connection_made, self)
        host.call_soon(self._start_reading)
        if on_made is not None:
            host.call_soon(on_made)

    def _start_reading(self) -> None:
        if self.is_reading():
            self._channel.start_reading()

    # -- the transport's public methods ---------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self) -> Any:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if not self.is_reading():
            return
        self._paused = True
        self._channel.stop_reading()
        if self._debug():
            _log().debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._channel.start_reading()
        if self._debug():
            _log().debug("%r resumes reading", self)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send one datagram to ``addr`` (to the endpoint's remote address when None)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if not data and not self._send_empty:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        # asyncio drops (and, past a threshold, logs) datagrams on a connected endpoint that
        # lost its connection; an unconnected socket still sends until it is released.
        if self._conn_lost and (self._address or self._released_already):
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                _log().warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                if self._connected:
                    self._channel.send_now(data)
                else:
                    self._channel.send_to_now(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._channel.want_write()
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        # Queue an immutable copy: the caller may reuse a bytearray once sendto() returns.
        chunk = bytes(data)
        self._buffer.append((chunk, addr))
        self._buffer_size += len(chunk) + self._header_size
        self._maybe_pause_protocol()

    def close(self) -> None:
        """Stop reading; release the socket once the queued datagrams have left."""
        if self._closing:
            return
        self._closing = True
        self._channel.stop_reading()
        if not self._buffer:
            self._conn_lost += 1
            self._channel.stop_write()
            assert self._host is not None
            self._host.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Drop the queued datagrams and release the socket."""
        self._force_close(None)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    # -- the sink: what the driver reports ------------------------------------------------

    def send_ready(self) -> None:
        """The channel can take datagrams again: send the queue until it blocks."""
        if self._released_already:
            return
        buffer = self._buffer
        channel = self._channel
        while buffer:
            data, addr = buffer.popleft()
            self._buffer_size -= len(data) + self._header_size
            try:
                if self._connected:
                    channel.send_now(data)
                else:
                    channel.send_to_now(data, addr)
            except (BlockingIOError, InterruptedError):
                buffer.appendleft((data, addr))
                self._buffer_size += len(data) + self._header_size
                break
            except OSError as exc:
                # This datagram is lost; the rest wait for the next call, as in asyncio.
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._maybe_resume_protocol()  # May queue more.
        if not buffer:
            channel.stop_write()
            if self._closing and not self._conn_lost:
                # close() waited for the queue; an abort has connection_lost scheduled.
                self._call_connection_lost(None)

    def send_failed(self, exc: BaseException) -> None:
        """A datagram the channel accepted failed later (completion drivers)."""
        if self._released_already:
            return
        if isinstance(exc, OSError):
            self._protocol.error_received(exc)
        else:
            self._fatal_error(exc, "Fatal write error on datagram transport")

    def received(self, data: bytes, address: Any) -> None:
        """One datagram arrived from ``address``."""
        if self._conn_lost:
            return
        self._protocol.datagram_received(data, address)

    def receive_failed(self, exc: BaseException) -> None:
        """Receiving failed: socket errors go to the protocol, anything else is fatal."""
        if self._conn_lost:
            return
        if isinstance(exc, OSError):
            self._protocol.error_received(exc)
        else:
            self._fatal_error(exc, "Fatal read error on datagram transport")

    # -- flow control ---------------------------------------------------------------------

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report("protocol.pause_writing() failed", exc)

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._report("protocol.resume_writing() failed", exc)

    # -- the end --------------------------------------------------------------------------

    def _report(self, message: str, exc: BaseException) -> None:
        host = self._host
        if host is not None:
            host.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def _debug(self) -> bool:
        host = self._host
        return host is not None and host.get_debug()

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        if isinstance(exc, OSError):
            if self._debug():
                _log().debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(message, exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost or self._released_already:
            return
        # Also when the queue is empty: a send error may have left the channel writing.
        self._buffer.clear()
        self._channel.stop_write()
        # asyncio keeps the stale count here; an empty queue counts nothing.
        self._buffer_size = 0
        if not self._closing:
            self._closing = True
            self._channel.stop_reading()
        self._conn_lost += 1
        assert self._host is not None
        self._host.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._released_already:
            return
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._released_already = True
            # A close() that flushed the queue ends here without counting a loss.
            self._conn_lost = self._conn_lost or 1
            self._channel.close()
            self._protocol = None
            self._host = None
            self._released()

    def _released(self) -> None:
        """Hook: the channel is closed and the protocol let go."""
