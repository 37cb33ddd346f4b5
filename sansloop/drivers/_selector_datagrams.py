"""Datagram channels for readiness drivers that have ``add_reader``/``add_writer``.

A :class:`ReadinessDatagram` is the :class:`sansloop.core.DatagramChannel` of one datagram
socket (UDP, or ``AF_UNIX``/``SOCK_DGRAM``): sending is the socket's own non-blocking ``send``
or ``sendto``; when one would block, the driver's writer handle calls the transport's
``send_ready`` each time the socket is writable.  Each readable report receives one datagram,
as asyncio does.  The handles run in the core's batch like any callback, so protocol callbacks
happen exactly where asyncio's selector transport makes them; any readiness driver (selectors
today, trio and the virtual network next) can use the class unchanged.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import DatagramSink

from ._readiness_channel import ReadinessChannel, closed_socket_call

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ReadinessDatagram"]


class ReadinessDatagram(ReadinessChannel[socket.socket]):
    """One datagram socket's channel on a readiness driver."""

    __slots__ = ("_recvfrom", "_sink", "send_now", "send_to_now")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sink: DatagramSink,
    ) -> None:
        super().__init__(driver, loop, sock)
        self._sink = sink
        # The bound methods themselves: no Python frame between the transport and the call.
        self.send_now: Callable[[Any], Any] = sock.send
        self.send_to_now: Callable[[Any, Any], Any] = sock.sendto
        self._recvfrom: Callable[[int], tuple[bytes, Any]] = sock.recvfrom

    def start_reading(self) -> None:
        self._watch_reading(self._readable)

    def want_write(self) -> None:
        self._watch_writing(self._sink.send_ready)

    def close(self) -> None:
        sock = self._release()
        if sock is not None:
            self.send_now = self.send_to_now = self._recvfrom = closed_socket_call
            sock.close()

    def _readable(self) -> None:
        # Once closed, _recvfrom raises OSError, which the transport ignores by then.
        sink = self._sink
        try:
            data, address = self._recvfrom(sink.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            sink.receive_failed(exc)
            return
        sink.received(data, address)
