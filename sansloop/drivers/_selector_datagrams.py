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

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ReadinessDatagram"]


class ReadinessDatagram:
    """One datagram socket's channel on a readiness driver."""

    __slots__ = (
        "_driver",
        "_fd",
        "_loop",
        "_reader",
        "_recvfrom",
        "_sink",
        "_sock",
        "_writer",
        "send_now",
        "send_to_now",
    )

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sink: DatagramSink,
    ) -> None:
        self._driver = driver
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._sink = sink
        self._reader: asyncio.Handle | None = None
        self._writer: asyncio.Handle | None = None
        # The bound methods themselves: no Python frame between the transport and the call.
        self.send_now: Callable[[Any], Any] = sock.send
        self.send_to_now: Callable[[Any, Any], Any] = sock.sendto
        self._recvfrom: Callable[[int], tuple[bytes, Any]] = sock.recvfrom

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
        self._writer = handle = asyncio.Handle(self._sink.send_ready, (), self._loop, None)
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

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self.stop_reading()
        self.stop_write()
        self._sock = None
        self.send_now = _closed_send
        self.send_to_now = _closed_send
        self._recvfrom = _closed_send
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


def _closed_send(*args: Any) -> Any:
    raise OSError("the socket is closed")
