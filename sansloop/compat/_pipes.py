"""asyncio's pipe transports and ``connect_read_pipe``/``connect_write_pipe``.

The behaviour is the core's (:class:`sansloop.core.PipeReadTransportCore`,
:class:`~sansloop.core.PipeWriteTransportCore`); this module adds what needs asyncio or the
OS: the ``fstat`` check of what may be a pipe (with asyncio's messages), making the
descriptor non-blocking, ``get_extra_info("pipe")``, ``isinstance`` with asyncio's transport
classes, ``repr`` and the unclosed-transport warning.  The bytes move through the channel the
loop's driver opens over the descriptor (:class:`sansloop.drivers.PipeDriver`).

Like asyncio's pipe transports, these do not claim the descriptor in the loop's transport
registry (``add_reader`` on it is allowed), and they close the pipe *object* they were given
when the connection is lost, so its owner (a ``subprocess.Popen``) never closes the
descriptor twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from sansloop.core import PipeReadTransportCore, PipeWriteTransportCore

from ._transports import set_result_unless_cancelled

if TYPE_CHECKING:
    from sansloop.drivers import PipeDriver, PipeLike

    from ._loop import EventLoop

__all__ = ["PIPE_METHODS", "ReadPipeTransport", "WritePipeTransport", "pipe_driver"]

logger = logging.getLogger("asyncio")


def pipe_driver(loop: EventLoop) -> PipeDriver:
    """The loop's driver, if it can carry pipe transports."""
    if sys.platform == "win32":
        # asyncio's SelectorEventLoop has no pipe transports on Windows either.
        raise NotImplementedError(
            "pipe and subprocess transports are not available on Windows with a selector "
            "loop (asyncio's ProactorEventLoop has them)"
        )
    driver = loop._driver
    if not hasattr(driver, "open_pipe"):
        raise NotImplementedError(
            f"the {type(driver).__name__} driver cannot carry pipe transports"
        )
    return cast("PipeDriver", driver)


class _PipeOwner:
    """``repr``, closing on a closed loop and the unclosed warning of a pipe transport."""

    # Set only once __init__ has finished: __del__ of a half-made transport does nothing.
    _pipe: PipeLike | None = None
    _fileno: int
    _loop: EventLoop
    _channel: Any
    _closing: bool
    _buffer_size: int
    _direction = "reading"

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None and not self._loop.is_closed():
            polling = getattr(self._channel, self._direction, False)
            info.append("polling" if polling else "idle")
            if self._direction == "writing":
                info.append(f"bufsize={self._buffer_size}")
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    def _close_on_closed_loop(self) -> bool:
        """A closed loop cannot schedule ``connection_lost``: just release the pipe."""
        if self._pipe is None or not self._loop.is_closed():
            return False
        self._closing = True
        self._channel.close()
        self._pipe = None
        return True

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._channel.close()
            self._pipe = None

    def _released(self) -> None:
        self._pipe = None


def _pipe_mode(pipe: Any) -> tuple[int, int]:
    fileno = pipe.fileno()
    return fileno, os.fstat(fileno).st_mode


class ReadPipeTransport(_PipeOwner, PipeReadTransportCore, asyncio.ReadTransport):
    """The read end of a pipe, FIFO, pty or character device (or a socket used as one)."""

    def __init__(
        self,
        loop: EventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        driver = pipe_driver(loop)
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        self._loop = loop
        self._fileno, mode = _pipe_mode(pipe)
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is for pipes/sockets only.")
        if sys.platform != "win32":  # (pipe_driver raised there)
            os.set_blocking(self._fileno, False)
        channel = driver.open_pipe(pipe, self, False)
        PipeReadTransportCore.__init__(self, loop, channel, protocol, extra)
        self._pipe = pipe
        self.start(None if waiter is None else _waking(waiter))

    def close(self) -> None:
        if not self._close_on_closed_loop():
            PipeReadTransportCore.close(self)


class WritePipeTransport(_PipeOwner, PipeWriteTransportCore, asyncio.WriteTransport):
    """The write end of a pipe, FIFO, pty or character device (or a socket used as one)."""

    _direction = "writing"

    def __init__(
        self,
        loop: EventLoop,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        driver = pipe_driver(loop)
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        self._loop = loop
        self._fileno, mode = _pipe_mode(pipe)
        is_char = stat.S_ISCHR(mode)
        is_fifo = stat.S_ISFIFO(mode)
        is_socket = stat.S_ISSOCK(mode)
        if not (is_char or is_fifo or is_socket):
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        if sys.platform != "win32":  # (pipe_driver raised there)
            os.set_blocking(self._fileno, False)
        channel = driver.open_pipe(pipe, self, True)
        # The reader going away makes the write end "readable" on pipes and sockets (on AIX
        # on sockets only); not on character devices.
        watch_peer = is_socket or (is_fifo and not sys.platform.startswith("aix"))
        PipeWriteTransportCore.__init__(self, loop, channel, protocol, extra, watch_peer)
        self._pipe = pipe
        self.start(None if waiter is None else _waking(waiter))

    def close(self) -> None:
        if not self._close_on_closed_loop():
            PipeWriteTransportCore.close(self)

    def abort(self) -> None:
        if not self._close_on_closed_loop():
            PipeWriteTransportCore.abort(self)

    if sys.version_info < (3, 12):

        def writelines(self, list_of_data: Any) -> None:
            self.write(b"".join(list_of_data))


def _waking(waiter: asyncio.Future[None]) -> Callable[[], None]:
    def on_made() -> None:
        set_result_unless_cancelled(waiter, None)

    return on_made


# -- the loop's methods --------------------------------------------------------------------


async def connect_read_pipe(
    self: EventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
) -> tuple[asyncio.ReadTransport, asyncio.BaseProtocol]:
    """Connect the read end ``pipe`` (a file object) to a new protocol."""
    return await _connect(self, ReadPipeTransport, "Read", protocol_factory, pipe)


async def connect_write_pipe(
    self: EventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
) -> tuple[asyncio.WriteTransport, asyncio.BaseProtocol]:
    """Connect the write end ``pipe`` (a file object) to a new protocol."""
    return await _connect(self, WritePipeTransport, "Write", protocol_factory, pipe)


async def _connect(
    loop: EventLoop,
    transport_class: type[ReadPipeTransport | WritePipeTransport],
    end: str,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    pipe: Any,
) -> tuple[Any, asyncio.BaseProtocol]:
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport = transport_class(loop, pipe, protocol, waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    if loop._debug:
        logger.debug("%s pipe %r connected: (%r, %r)", end, pipe.fileno(), transport, protocol)
    return transport, protocol


#: name -> method, for the compat loop to place in its class body.
PIPE_METHODS: dict[str, Callable[..., Any]] = {
    "connect_read_pipe": connect_read_pipe,
    "connect_write_pipe": connect_write_pipe,
}
