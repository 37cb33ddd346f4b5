"""Pipe transports over real pipes, FIFOs and ptys, through ``connect_read_pipe``/``_write_pipe``.

Every test runs on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions, and checks that no file descriptor is left open.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from _net import run

import sansloop

pytestmark = [
    pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak"),
    pytest.mark.skipif(sys.platform == "win32", reason="Unix pipes"),
]


class Recorder(asyncio.Protocol):
    """Records every callback; ``done`` resolves at connection_lost."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.exc: BaseException | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused = 0
        self.resumed = 0

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self) -> None:
        self.events.append("eof")

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.exc = exc
        self.done.set_result(None)


def drop(holder: list[Any]) -> None:
    """Let go of the only reference to an object, and collect it."""
    holder.clear()
    gc.collect()


@pytest.fixture
def pipe() -> Iterator[tuple[Any, Any]]:
    """An os.pipe() as unbuffered file objects (transports close the ones they are given)."""
    r, w = os.pipe()
    rf, wf = os.fdopen(r, "rb", 0), os.fdopen(w, "wb", 0)
    try:
        yield rf, wf
    finally:
        rf.close()
        wf.close()


def test_read_pipe_delivers_data_then_eof_then_lost(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_read_pipe(Recorder, rf)
        assert isinstance(transport, asyncio.ReadTransport)
        assert transport.get_extra_info("pipe") is rf
        assert transport.is_reading()
        os.write(wf.fileno(), b"hello ")
        os.write(wf.fileno(), b"world")
        wf.close()
        await proto.done
        assert bytes(proto.data) == b"hello world"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert proto.exc is None
        assert transport.is_closing()
        assert rf.closed  # the transport closed the pipe object it was given

    run(any_loop, main())


def test_read_pipe_pause_and_resume(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_read_pipe(Recorder, rf)
        transport.pause_reading()
        assert not transport.is_reading()
        os.write(wf.fileno(), b"x")
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.data == b""
        transport.resume_reading()
        assert transport.is_reading()
        while not proto.data:
            await asyncio.sleep(0)
        assert proto.data == b"x"
        transport.close()
        transport.close()  # idempotent
        await proto.done
        assert proto.events == ["made", "data", "lost"]

    run(any_loop, main())


def test_write_pipe_64_mib_with_flow_control(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe
    chunk = os.urandom(1 << 20)
    expected = hashlib.sha256(chunk * 64).hexdigest()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
        wtransport, wproto = await loop.connect_write_pipe(Recorder, wf)
        assert isinstance(wtransport, asyncio.WriteTransport)
        assert wtransport.can_write_eof()

        async def produce() -> None:
            for _ in range(64):
                wtransport.write(chunk)
                while wtransport.get_write_buffer_size() > 1 << 21:
                    await asyncio.sleep(0)
            wtransport.close()

        producer = asyncio.ensure_future(produce())
        digest = hashlib.sha256()
        total = 0
        while data := await reader.read(1 << 20):
            digest.update(data)
            total += len(data)
        await producer
        await wproto.done
        assert total == 64 << 20
        assert digest.hexdigest() == expected
        assert wproto.paused >= 1
        assert wproto.resumed == wproto.paused
        assert wproto.exc is None

    run(any_loop, main(), timeout=60)


def test_write_after_close_is_dropped_and_logged(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        transport.write(b"a")
        transport.close()
        assert transport.is_closing()
        with caplog.at_level(logging.WARNING, "asyncio"):
            for _ in range(6):
                transport.write(b"dropped")
        await proto.done
        assert os.read(rf.fileno(), 100) == b"a"
        warnings = [r for r in caplog.records if "pipe closed by peer" in r.getMessage()]
        assert len(warnings) == 1  # the 6th write (the 5th after the first dropped)

    run(any_loop, main())


def test_write_after_close_with_bytes_buffered(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe
    data = os.urandom(1 << 20)  # more than the pipe holds: most of it stays buffered

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        transport.write(data)
        transport.close()
        transport.write(b"dropped")  # the close still flushes, exactly once
        assert await reader.read() == data
        await proto.done
        assert proto.exc is None

    run(any_loop, main())


def test_write_eof_closes(any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        transport.write(b"last")
        transport.write_eof()
        await proto.done
        assert proto.events == ["made", "lost"]
        assert os.read(rf.fileno(), 100) == b"last"
        assert os.read(rf.fileno(), 100) == b""  # end of file: the write end is closed

    run(any_loop, main())


def test_write_to_closed_reader_is_broken_pipe(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe
    handled: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: handled.append(context))
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        rf.close()
        transport.write(b"nobody reads this")
        await proto.done
        assert isinstance(proto.exc, BrokenPipeError)
        assert proto.events == ["made", "lost"]

    run(any_loop, main())
    assert handled == []  # an OSError is the peer's doing: not reported


def test_reader_going_away_closes_the_idle_write_end(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        rf.close()
        await proto.done
        assert proto.exc is None  # nothing was buffered
        assert transport.is_closing()

    run(any_loop, main())


def test_reader_going_away_with_bytes_buffered_is_broken_pipe(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        transport.write(b"x" * (4 << 20))  # more than the pipe holds
        assert transport.get_write_buffer_size() > 0
        rf.close()
        await proto.done
        assert isinstance(proto.exc, BrokenPipeError)
        assert transport.get_write_buffer_size() == 0

    run(any_loop, main())


def test_abort_drops_the_buffer(any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        transport.write(b"x" * (4 << 20))
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        await proto.done
        assert proto.exc is None
        received = 0
        while data := os.read(rf.fileno(), 1 << 20):
            received += len(data)
        assert received < 4 << 20

    run(any_loop, main())


def test_write_rejects_non_bytes(
    any_loop: asyncio.AbstractEventLoop, pipe: tuple[Any, Any]
) -> None:
    rf, wf = pipe

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.connect_write_pipe(Recorder, wf)
        with pytest.raises(AssertionError, match="'text'"):
            transport.write("text")
        transport.write(bytearray(b"ba"))
        transport.write(memoryview(b"mv"))
        transport.writelines([b"l1", b"l2"])
        transport.close()
        await proto.done
        assert os.read(rf.fileno(), 100) == b"bamvl1l2"

    run(any_loop, main())


def test_regular_files_are_refused(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryFile() as f:
            with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
                await loop.connect_read_pipe(asyncio.Protocol, f)
            with pytest.raises(
                ValueError,
                match=r"^Pipe transport is only for pipes, sockets and character devices$",
            ):
                await loop.connect_write_pipe(asyncio.Protocol, f)

    run(any_loop, main())
    gc.collect()


def test_fifo_both_ways(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "fifo")
            os.mkfifo(path)
            rf = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", 0)  # noqa: SIM115
            wf = open(path, "wb", 0)  # noqa: SIM115  (the transport closes it)
            _rtransport, rproto = await loop.connect_read_pipe(Recorder, rf)
            wtransport, wproto = await loop.connect_write_pipe(Recorder, wf)
            wtransport.write(b"through a fifo")
            wtransport.close()
            await rproto.done
            await wproto.done
            assert rproto.data == b"through a fifo"
            assert rproto.events == ["made", "data", "eof", "lost"]

    run(any_loop, main())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no ptys")
def test_pty_read_ends_quietly_with_eio(any_loop: asyncio.AbstractEventLoop) -> None:
    handled: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: handled.append(context))
        master, slave = os.openpty()
        master_f = open(master, "rb", 0)  # noqa: SIM115  (the transport closes it)
        _transport, proto = await loop.connect_read_pipe(Recorder, master_f)
        os.write(slave, b"from the pty\n")
        while b"\n" not in proto.data:
            await asyncio.sleep(0.001)
        os.close(slave)
        await proto.done
        assert proto.data.startswith(b"from the pty")
        # Linux reports the slave's closing as EIO on the master: fatal, but not reported.
        if sys.platform.startswith("linux"):
            assert isinstance(proto.exc, OSError)
            assert proto.exc.errno == errno.EIO

    run(any_loop, main())
    assert handled == []


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no ptys")
def test_pty_write_end_is_a_character_device(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        slave_f = open(slave, "wb", 0)  # noqa: SIM115  (the transport closes it)
        transport, proto = await loop.connect_write_pipe(Recorder, slave_f)
        transport.write(b"to the pty\n")
        got = b""
        while b"\n" not in got:
            await asyncio.sleep(0.001)
            try:
                got += os.read(master, 100)
            except BlockingIOError:
                pass
        transport.close()
        await proto.done
        os.close(master)
        assert got.startswith(b"to the pty")

    run(any_loop, main())


def test_a_socket_as_a_pipe(any_loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _rtransport, rproto = await loop.connect_read_pipe(Recorder, a)
        wtransport, wproto = await loop.connect_write_pipe(Recorder, b)
        wtransport.write(b"over a socket")
        wtransport.close()
        await wproto.done
        await rproto.done
        assert rproto.data == b"over a socket"
        assert rproto.events == ["made", "data", "eof", "lost"]

    try:
        run(any_loop, main())
        assert a.fileno() == -1  # the transports closed the sockets they were given
        assert b.fileno() == -1
    finally:
        a.close()
        b.close()


def test_unclosed_pipe_transport_warns(loop_factory: Any, pipe: tuple[Any, Any]) -> None:
    rf, _wf = pipe
    loop = loop_factory()
    transport, _ = run(loop, loop.connect_read_pipe(asyncio.Protocol, rf))
    loop.close()  # (an open loop's reader callback keeps the transport alive)
    holder = [transport]
    del transport
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        drop(holder)
    assert rf.closed


def test_close_after_the_loop_closed_releases_the_pipe(pipe: tuple[Any, Any]) -> None:
    rf, wf = pipe
    loop = sansloop.EventLoop()
    rtransport, _ = run(loop, loop.connect_read_pipe(asyncio.Protocol, rf))
    wtransport, _ = run(loop, loop.connect_write_pipe(asyncio.Protocol, wf))
    loop.close()
    rtransport.close()
    wtransport.close()
    assert rf.closed
    assert wf.closed


def test_a_driver_without_pipes_says_so(clock_only_driver: Any, pipe: tuple[Any, Any]) -> None:
    loop = sansloop.EventLoop(clock_only_driver)
    try:
        with pytest.raises(NotImplementedError, match="ClockOnlyDriver driver cannot carry pipe"):
            loop.run_until_complete(loop.connect_read_pipe(asyncio.Protocol, pipe[0]))
    finally:
        loop.close()


def test_close_from_resume_writing_still_flushes(pipe: tuple[Any, Any]) -> None:
    """sansloop only: asyncio's write pipe drops what ``resume_writing()`` wrote when the
    same call closes the transport (its ``_write_ready`` closes without looking at the
    refilled buffer; the socket transport's twin was gh-115514).  sansloop sends it all."""
    rf, wf = pipe
    block = os.urandom(64 * 1024)
    blocks = 64

    class Source(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.left = blocks
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.transport = transport

        def pump(self) -> None:
            while self.left and not self.paused > self.resumed:
                self.left -= 1
                self.transport.write(block)
            if not self.left:
                self.transport.close()

        def resume_writing(self) -> None:
            super().resume_writing()
            self.pump()

    loop = sansloop.EventLoop()

    async def main() -> None:
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rf)
        _, source = await loop.connect_write_pipe(Source, wf)
        source.pump()
        data = await reader.read()
        await source.done
        assert source.paused >= 1
        assert len(data) == blocks * len(block)
        assert data == block * blocks

    try:
        run(loop, main())
    finally:
        loop.close()
