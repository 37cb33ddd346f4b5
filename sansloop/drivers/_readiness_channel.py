"""The readiness half of every channel: one reader and one writer handle per socket.

Stream channels, datagram channels and listeners all watch one socket through the driver's
``add_reader``/``add_writer`` (:class:`ReadinessDriver`), each direction with a fresh
``asyncio.Handle`` that runs in the core's batch like any callback.  :class:`ReadinessChannel`
holds that bookkeeping once: starting a direction twice is a no-op, stopping cancels the
handle (so a readiness report already queued for it does not run), and nothing touches the
driver once the loop is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ReadinessChannel", "closed_socket_call"]


class _Watched(Protocol):
    def fileno(self) -> int: ...


#: What a channel watches: a socket, or a pipe's file object.
_W = TypeVar("_W", bound=_Watched)


def closed_socket_call(*args: Any) -> Any:
    """What a channel's socket calls become once it is closed."""
    raise OSError("the socket is closed")


class ReadinessChannel(Generic[_W]):
    """A socket (or pipe) watched for reading and writing through a readiness driver."""

    __slots__ = ("_driver", "_fd", "_loop", "_reader", "_sock", "_writer")

    def __init__(self, driver: ReadinessDriver, loop: asyncio.AbstractEventLoop, sock: _W) -> None:
        self._driver = driver
        self._loop = loop
        self._sock: _W | None = sock
        self._fd = sock.fileno()
        self._reader: asyncio.Handle | None = None
        self._writer: asyncio.Handle | None = None

    @property
    def reading(self) -> bool:
        """Whether the socket is watched for reading."""
        return self._reader is not None

    @property
    def writing(self) -> bool:
        """Whether the socket is watched for writing."""
        return self._writer is not None

    def _watch_reading(self, callback: Callable[[], object]) -> None:
        if self._reader is not None or self._sock is None:
            return
        self._reader = handle = asyncio.Handle(callback, (), self._loop, None)
        replaced = self._driver.add_reader(self._fd, handle)
        if replaced is not None:
            replaced.cancel()

    def _watch_writing(self, callback: Callable[[], object]) -> None:
        if self._writer is not None or self._sock is None:
            return
        self._writer = handle = asyncio.Handle(callback, (), self._loop, None)
        replaced = self._driver.add_writer(self._fd, handle)
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

    def stop_write(self) -> None:
        handle = self._writer
        if handle is None:
            return
        self._writer = None
        handle.cancel()
        if not self._loop.is_closed():
            self._driver.remove_writer(self._fd)

    def _release(self) -> _W | None:
        """Stop watching and forget the socket; return it (None if already released)."""
        sock = self._sock
        if sock is not None:
            self.stop_reading()
            self.stop_write()
            self._sock = None
        return sock
