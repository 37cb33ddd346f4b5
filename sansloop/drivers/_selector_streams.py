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

from ._readiness_channel import ReadinessChannel, closed_socket_call

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ReadinessListener", "ReadinessStream"]


class ReadinessStream(ReadinessChannel[socket.socket]):
    """One connected socket's channel on a readiness driver."""

    __slots__ = ("_sink", "send_now")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sink: StreamSink,
    ) -> None:
        super().__init__(driver, loop, sock)
        self._sink = sink
        self.send_now: Callable[[Any], int] = sock.send

    def start_reading(self) -> None:
        self._watch_reading(self._readable)

    def want_write(self) -> None:
        self._watch_writing(self._writable)

    def shutdown_write(self) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        sock = self._release()
        if sock is not None:
            self.send_now = closed_socket_call
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


class ReadinessListener(ReadinessChannel[socket.socket]):
    """Accepts connections on a listening socket each time it is readable.

    Each readiness report accepts up to ``backlog`` connections in a row (asyncio's rule:
    several may be waiting, and one report per loop iteration would starve them).  Every
    accepted socket is made non-blocking and handed to ``accepted(conn, address)``;
    ``failed(exc)`` hears any error other than "no connection waiting".
    """

    __slots__ = ("_accepted", "_backlog", "_failed", "_listening")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        backlog: int,
        accepted: Callable[[socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> None:
        super().__init__(driver, loop, sock)
        self._listening = sock
        self._backlog = backlog
        self._accepted = accepted
        self._failed = failed

    def start(self) -> None:
        self._watch_reading(self._readable)

    def stop(self) -> None:
        self.stop_reading()

    def _readable(self) -> None:
        accept = self._listening.accept
        for _ in range(self._backlog):
            if self._reader is None:
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
