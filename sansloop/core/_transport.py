"""What every transport state machine shares: protocol, reading, flow control, the end.

:class:`TransportCore` holds the parts of asyncio's ``_SelectorTransport`` that do not depend
on what travels: the protocol and ``get_extra_info``, ``pause_reading``/``resume_reading``,
the write-buffer water marks with ``pause_writing``/``resume_writing``, error reporting (OS
errors quietly, anything else to the exception handler), and ``connection_lost`` called once,
after which the channel is closed.  The stream and datagram cores add their buffers, their
``write``/``sendto`` and their ``close``/``abort`` rules.  No system call is made here either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized
from typing import Any, Final, Protocol

__all__ = [
    "LOG_THRESHOLD_FOR_CONNLOST_WRITES",
    "Channel",
    "TransportCore",
    "TransportHost",
    "log",
]

#: asyncio's threshold: writes after the connection was lost are logged from this many on.
LOG_THRESHOLD_FOR_CONNLOST_WRITES: Final = 5


class TransportHost(Protocol):
    """What a transport needs from the loop that owns it."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Any: ...

    def call_exception_handler(self, context: dict[str, Any]) -> None: ...

    def get_debug(self) -> bool: ...


class Channel(Protocol):
    """The part of a driver's channel that every transport uses."""

    def stop_write(self) -> None:
        """Nothing remains to send (or the transport gave up): stop sending."""
        ...

    def start_reading(self) -> None:
        """Deliver what arrives through the sink methods until :meth:`stop_reading`."""
        ...

    def stop_reading(self) -> None:
        """Deliver nothing more (a delivery already queued is dropped)."""
        ...

    def close(self) -> None:
        """Release the socket.  Idempotent."""
        ...


def log() -> logging.Logger:
    """asyncio's logger, looked up when needed: the core keeps no module-level state."""
    return logging.getLogger("asyncio")


class TransportCore:
    """The transport behaviour common to streams and datagrams; see the module docstring.

    Subclasses provide ``_buffer``, ``_force_close`` and the sending side, and
    override :meth:`_released` to learn when the transport is done.
    """

    def __init__(
        self,
        host: TransportHost,
        channel: Channel,
        protocol: Any,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._host: TransportHost | None = host
        self._extra: dict[str, Any] = {} if extra is None else extra
        self._protocol: Any = None
        self._protocol_connected = False
        self.set_protocol(protocol)
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._released_already = False
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._base_channel = channel
        # The subclass's write buffer (bytes chunks, or datagrams) and its size in bytes.
        self._buffer: Sized = ()
        self._buffer_size = 0

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
            self._base_channel.start_reading()

    # -- the transport's public methods ---------------------------------------------------
    # (get_extra_info is asyncio.BaseTransport's own, reading ``_extra``: code that patches
    # asyncio.BaseTransport.get_extra_info must reach sansloop's transports too.)

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
        self._base_channel.stop_reading()
        if self._debug():
            log().debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._base_channel.start_reading()
        if self._debug():
            log().debug("%r resumes reading", self)

    def close(self) -> None:
        """Stop reading; release the socket once the write buffer has drained."""
        if self._closing:
            return
        self._closing = True
        self._base_channel.stop_reading()
        if not self._buffer:
            self._conn_lost += 1
            self._base_channel.stop_write()
            assert self._host is not None
            self._host.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Drop what is buffered and release the socket."""
        self._force_close(None)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._set_write_buffer_limits(high, low)
        self._maybe_pause_protocol()

    def _set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low

    # -- flow control ---------------------------------------------------------------------

    def _maybe_pause_protocol(self) -> None:
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report("protocol.pause_writing() failed", exc)

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
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
            # Connection errors are the peer's doing, not a bug: logged only in debug mode.
            if self._debug():
                log().debug("%r: %s", self, message, exc_info=True)
        else:
            self._report(message, exc)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._released_already:
            return
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._released_already = True
            # Lost for good, also when close() flushed the last byte: a later write is
            # dropped and a later abort() does nothing.
            self._conn_lost = max(self._conn_lost, 1)
            self._base_channel.close()
            self._protocol = None
            self._host = None
            self._let_go()
            self._released()

    def _let_go(self) -> None:
        """Hook for the subclass's own state to release once the connection is lost."""

    def _released(self) -> None:
        """Hook: the channel is closed and the protocol let go."""
