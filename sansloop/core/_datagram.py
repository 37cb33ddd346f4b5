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

from collections import deque
from typing import Any, Protocol

from ._transport import (
    LOG_THRESHOLD_FOR_CONNLOST_WRITES,
    Channel,
    TransportCore,
    TransportHost,
    log,
)

__all__ = ["DatagramChannel", "DatagramSink", "DatagramTransportCore"]


class DatagramChannel(Channel, Protocol):
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


class DatagramSink(Protocol):
    """What a driver's datagram channel reports to (a :class:`DatagramTransportCore`)."""

    #: Bytes to ask of each receive (asyncio's ``max_size``).
    max_size: int

    def send_ready(self) -> None: ...

    def send_failed(self, exc: BaseException) -> None: ...

    def received(self, data: bytes, address: Any) -> None: ...

    def receive_failed(self, exc: BaseException) -> None: ...


class DatagramTransportCore(TransportCore):
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
        self._channel = channel
        self._address = address
        self._connected = connected
        self._header_size = header_size
        self._send_empty = send_empty
        TransportCore.__init__(self, host, channel, protocol, extra)
        self._buffer: deque[tuple[bytes, Any]] = deque()
        self._buffer_size = 0

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
                log().warning("socket.send() raised exception.")
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
