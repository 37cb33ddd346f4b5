"""Pipe channels for readiness drivers: ``os.read``/``os.write`` on a non-socket descriptor.

A :class:`ReadinessPipe` is the :class:`sansloop.core.PipeChannel` of one pipe end (a pipe,
FIFO, pty, character device, or a socket used as a pipe): ``send_now`` is a non-blocking
``os.write``; reading and writing wait for readiness through the driver's reader and writer
handles, exactly as :class:`~._selector_streams.ReadinessStream` does for sockets.  A *write*
end started "reading" only watches: the peer closing makes the descriptor readable, which is
reported as end of file without reading anything (asyncio's trick for noticing that a
child closed its stdin).  Closing the channel closes the pipe's file object, so an owner such
as ``subprocess.Popen`` never closes the descriptor a second time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from sansloop.core import PipeSink

from ._readiness_channel import ReadinessChannel

if TYPE_CHECKING:
    from ._contract import PipeLike, ReadinessDriver

__all__ = ["ReadinessPipe"]


class ReadinessPipe(ReadinessChannel["PipeLike"]):
    """One pipe end's channel on a readiness driver."""

    __slots__ = ("_sink", "_write_end")

    def __init__(
        self,
        driver: ReadinessDriver,
        loop: asyncio.AbstractEventLoop,
        pipe: PipeLike,
        sink: PipeSink,
        write_end: bool,
    ) -> None:
        super().__init__(driver, loop, pipe)
        self._sink = sink
        self._write_end = write_end

    def send_now(self, data: Any) -> int:
        if self._sock is None:
            raise OSError("the pipe is closed")
        return os.write(self._fd, data)

    def start_reading(self) -> None:
        self._watch_reading(self._peer_closed if self._write_end else self._readable)

    def want_write(self) -> None:
        self._watch_writing(self._writable)

    def close(self) -> None:
        pipe = self._release()
        if pipe is not None:
            pipe.close()

    def _readable(self) -> None:
        if self._sock is None:
            return
        try:
            data = os.read(self._fd, self._sink.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._sink.read_failed(exc)
            return
        self._sink.received(data)

    def _peer_closed(self) -> None:
        if self._sock is not None:
            self._sink.received(b"")

    def _writable(self) -> None:
        sink = self._sink
        if self._sock is None:
            return
        try:
            n = os.write(self._fd, sink.pending())
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            sink.write_failed(exc)
            return
        sink.sent(n)
