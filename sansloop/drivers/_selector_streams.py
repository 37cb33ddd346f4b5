"""Stream channels and listeners for readiness drivers that have ``add_reader``/``add_writer``.

A :class:`ReadinessStream` is the :class:`sansloop.core.StreamChannel` of one connected
socket: ``send_now`` is the socket's own non-blocking ``send``; reading and sending wait for
readiness through the driver's reader and writer handles, which run in the core's batch like
any callback, so protocol callbacks happen exactly where asyncio's selector transport makes
them.  Every readiness driver (selectors today, trio and the virtual network next) can use
it unchanged: it needs only the :class:`ReadinessDriver` methods.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import StreamSink

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ReadinessListener", "ReadinessStream"]


class ReadinessStream:
    """One connected socket's channel on a readiness driver."""

    __slots__ = ("_driver", "_fd", "_loop", "_reader", "_sink", "_sock", "_writer", "send_now")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sink: StreamSink,
    ) -> None:
        self._driver = driver
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._sink = sink
        self._reader: asyncio.Handle | None = None
        self._writer: asyncio.Handle | None = None
        self.send_now: Callable[[Any], int] = sock.send

    @property
    def reading(self) -> bool:
        """Whether the socket is watched for reading."""
        return self._reader is not None

    @property
    def writing(self) -> bool:
        """Whether the socket is watched for writing."""
        return self._writer is not None

    def start_reading(self) -> None:
        if self._reader is not None or self._sock is None:
            return
        self._reader = handle = asyncio.Handle(self._readable, (), self._loop, None)
        replaced = self._driver.add_reader(self._fd, handle)
        if replaced is not None:
            replaced.cancel()

    def stop_reading(self) -> None:
        handle = self._reader
        if handle is None:
            return
        self._reader = None
        handle.cancel()
        if not self._loop.is_closed():
            self._driver.remove_reader(self._fd)

    def want_write(self) -> None:
        if self._writer is not None or self._sock is None:
            return
        self._writer = handle = asyncio.Handle(self._writable, (), self._loop, None)
        replaced = self._driver.add_writer(self._fd, handle)
        if replaced is not None:
            replaced.cancel()

    def stop_write(self) -> None:
        handle = self._writer
        if handle is None:
            return
        self._writer = None
        handle.cancel()
        if not self._loop.is_closed():
            self._driver.remove_writer(self._fd)

    def shutdown_write(self) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self.stop_reading()
        self.stop_write()
        self._sock = None
        self.send_now = _closed_send
        sock.close()

    def _readable(self) -> None:
        sink = self._sink
        sock = self._sock
        if sock is None:
            return
        if sink.reads_into_buffer:
            buf = sink.recv_buffer()
            if buf is None:
                return
            try:
                nbytes = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                sink.read_failed(exc)
                return
            sink.received_into(nbytes)
            return
        try:
            data = sock.recv(sink.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            sink.read_failed(exc)
            return
        sink.received(data)

    def _writable(self) -> None:
        sink = self._sink
        sock = self._sock
        if sock is None:
            return
        try:
            n = sock.send(sink.pending())
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            sink.write_failed(exc)
            return
        sink.sent(n)


def _closed_send(data: Any) -> int:
    raise OSError("the socket is closed")


class ReadinessListener:
    """Accepts connections on a listening socket each time it is readable.

    Each readiness report accepts up to ``backlog`` connections in a row (asyncio's rule:
    several may be waiting, and one report per loop iteration would starve them).  Every
    accepted socket is made non-blocking and handed to ``accepted(conn, address)``;
    ``failed(exc)`` hears any error other than "no connection waiting".
    """

    __slots__ = ("_accepted", "_backlog", "_driver", "_failed", "_fd", "_handle", "_loop", "_sock")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        backlog: int,
        accepted: Callable[[socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> None:
        self._driver = driver
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._backlog = backlog
        self._accepted = accepted
        self._failed = failed
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        if self._handle is not None:
            return
        self._handle = handle = asyncio.Handle(self._readable, (), self._loop, None)
        replaced = self._driver.add_reader(self._fd, handle)
        if replaced is not None:
            replaced.cancel()

    def stop(self) -> None:
        handle = self._handle
        if handle is None:
            return
        self._handle = None
        handle.cancel()
        if not self._loop.is_closed():
            self._driver.remove_reader(self._fd)

    def _readable(self) -> None:
        accept = self._sock.accept
        for _ in range(self._backlog):
            if self._handle is None:
                return  # Stopped by the previous connection's callback.
            try:
                conn, address = accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._failed(exc)
                return
            self._accepted(conn, address)
