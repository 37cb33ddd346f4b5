"""``loop.sock_sendfile()`` and ``loop.sendfile()`` through the public API, over real TCP.

Behaviour tests run on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions.  Where asyncio misbehaves (a cancelled transfer forgets the file position, a
cancelled drain leaves the transport refusing writes, closing the transport mid-transfer hangs
the call) sansloop does better; those tests run on sansloop only and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import re
import selectors
import socket
import ssl
import sys
from asyncio import constants
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from _net import run

import sansloop
from sansloop.drivers import SelectorDriver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_T = TypeVar("_T")

_FALLBACK = constants._SendfileMode.FALLBACK

#: A few MiB plus an odd tail, so no chunk size divides it.
BIG = 5 * 1024 * 1024 + 12345
#: Small socket buffers, so that a transfer of this much must wait for the reader.
SLOW = 4 * 1024 * 1024
_SMALL_BUFFER = 32 * 1024


def _data(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[tuple[Any, bytes]]:
    """A binary file of :data:`BIG` random bytes, open for reading, and its contents."""
    data = _data(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    with path.open("rb") as file:
        yield file, data


class _NoPythonReads(io.FileIO):
    """A file that fails if read through Python: only ``os.sendfile`` can send it."""

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the zero-copy path read the file through Python")


@pytest.fixture
def unreadable_file(tmp_path: Path) -> Iterator[tuple[Any, bytes]]:
    """Like :func:`big_file`, but only ``os.sendfile`` can send it."""
    data = _data(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    with _NoPythonReads(path, "rb") as file:
        yield file, data


@pytest.fixture
def slow_file(tmp_path: Path) -> Iterator[tuple[Any, bytes]]:
    """A file too big for the small socket buffers of :func:`_connected` (``slow=True``)."""
    data = _data(SLOW)
    path = tmp_path / "slow.bin"
    path.write_bytes(data)
    with path.open("rb") as file:
        yield file, data


def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


def _shrink_buffers(sender: socket.socket, receiver: socket.socket) -> None:
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SMALL_BUFFER)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SMALL_BUFFER)


@contextlib.asynccontextmanager
async def _connected(
    loop: asyncio.AbstractEventLoop, *, slow: bool = False
) -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair (sender, receiver); ``slow``: small buffers on both ends."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.setblocking(False)
        sender = _nonblocking(socket.socket())
        try:
            accepting = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(sender, srv.getsockname())
            receiver, _ = await accepting
            with receiver:
                if slow:
                    _shrink_buffers(sender, receiver)
                yield sender, receiver
        finally:
            sender.close()


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        data = await loop.sock_recv(sock, n - len(chunks))
        if not data:
            break
        chunks += data
    return bytes(chunks)


async def _read_to_end(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    chunks = bytearray()
    while data := await loop.sock_recv(sock, 256 * 1024):
        chunks += data
    return bytes(chunks)


def _without_os_sendfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take ``os.sendfile`` away (as on Windows): only the fallback remains."""
    if hasattr(os, "sendfile"):
        monkeypatch.delattr(os, "sendfile")


# -- sock_sendfile --------------------------------------------------------------------------


def test_sock_sendfile_whole_file(
    any_loop: asyncio.AbstractEventLoop, unreadable_file: tuple[Any, bytes]
) -> None:
    file, data = unreadable_file

    async def main() -> tuple[int, bytes]:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sock_sendfile(sender, file)
            assert not any_loop.remove_writer(sender)  # Nothing left watching the socket.
            sender.shutdown(socket.SHUT_WR)
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(data)
    assert received == data
    assert file.tell() == len(data)


@pytest.mark.parametrize(
    ("offset", "count"),
    [(0, 1), (1000, 2000), (12345, None), (BIG - 10, 5), (BIG - 10, 1000), (7, BIG)],
)
def test_sock_sendfile_offset_and_count(
    any_loop: asyncio.AbstractEventLoop,
    big_file: tuple[Any, bytes],
    offset: int,
    count: int | None,
) -> None:
    file, data = big_file
    expected = data[offset : None if count is None else offset + count]

    async def main() -> tuple[int, bytes]:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sock_sendfile(sender, file, offset, count)
            sender.shutdown(socket.SHUT_WR)
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(expected)
    assert received == expected
    assert file.tell() == offset + len(expected)


def test_sock_sendfile_twice_in_a_row(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    # The file position does not choose where sendfile starts: offset does.
    file, data = big_file

    async def main() -> tuple[list[int], bytes]:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            first = await any_loop.sock_sendfile(sender, file, 0, 100)
            second = await any_loop.sock_sendfile(sender, file, 50, 100)
            await any_loop.sock_sendall(sender, b"--")
            sender.shutdown(socket.SHUT_WR)
            return [first, second], await reading

    counts, received = run(any_loop, main())
    assert counts == [100, 100]
    assert received == data[:100] + data[50:150] + b"--"
    assert file.tell() == 150


def test_sock_sendfile_past_the_end(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file

    async def main() -> int:
        async with _connected(any_loop) as (sender, _receiver):
            return await any_loop.sock_sendfile(sender, file, BIG + 10)

    assert run(any_loop, main()) == 0
    assert file.tell() == 0  # Nothing sent: the position is left alone.


@pytest.mark.parametrize("fallback", [True, False])
def test_sock_sendfile_empty_file(
    any_loop: asyncio.AbstractEventLoop, tmp_path: Path, fallback: bool
) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")

    async def main() -> int:
        async with _connected(any_loop) as (sender, _receiver):
            with path.open("rb") as file:
                return await any_loop.sock_sendfile(sender, file, fallback=fallback)

    assert run(any_loop, main()) == 0


@pytest.mark.parametrize(("offset", "count"), [(0, None), (100, 1000), (70_000, None)])
def test_sock_sendfile_falls_back_for_a_file_without_descriptor(
    any_loop: asyncio.AbstractEventLoop, offset: int, count: int | None
) -> None:
    data = _data(300_000)
    file = io.BytesIO(data)
    expected = data[offset : None if count is None else offset + count]

    async def main() -> tuple[int, bytes]:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sock_sendfile(sender, file, offset, count)
            sender.shutdown(socket.SHUT_WR)
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(expected)
    assert received == expected
    assert file.tell() == offset + len(expected)


def test_sock_sendfile_without_fallback_for_a_file_without_descriptor(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    file = io.BytesIO(b"data")

    async def main() -> bytes:
        async with _connected(any_loop) as (sender, receiver):
            with pytest.raises(asyncio.SendfileNotAvailableError, match=r"^not a regular file$"):
                await any_loop.sock_sendfile(sender, file, fallback=False)
            sender.shutdown(socket.SHUT_WR)
            return await _read_to_end(any_loop, receiver)

    assert run(any_loop, main()) == b""
    assert file.tell() == 0


def test_sock_sendfile_without_fallback_when_sendfile_fails(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    # sendfile(2) cannot read from a pipe: the zero-copy path is unavailable.
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as file, os.fdopen(write_fd, "wb") as writer:
        writer.write(b"through a pipe")
        writer.flush()

        async def main() -> bytes:
            async with _connected(any_loop) as (sender, receiver):
                with pytest.raises(
                    asyncio.SendfileNotAvailableError, match=r"^os\.sendfile call failed$"
                ):
                    await any_loop.sock_sendfile(sender, file, 0, 14, fallback=False)
                sender.shutdown(socket.SHUT_WR)
                return await _read_to_end(any_loop, receiver)

        assert run(any_loop, main()) == b""


@pytest.mark.parametrize(("offset", "count"), [(0, None), (1000, 2000), (123, BIG)])
def test_sock_sendfile_fallback_without_os_sendfile(
    any_loop: asyncio.AbstractEventLoop,
    big_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
    offset: int,
    count: int | None,
) -> None:
    file, data = big_file
    expected = data[offset : None if count is None else offset + count]
    _without_os_sendfile(monkeypatch)

    async def main() -> tuple[int, bytes]:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sock_sendfile(sender, file, offset, count)
            sender.shutdown(socket.SHUT_WR)
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(expected)
    assert received == expected
    assert file.tell() == offset + len(expected)


def test_sock_sendfile_fallback_chunk_size_is_read_on_each_call(
    any_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CPython's own tests shrink asyncio's constant; the fallback must honour it.
    class CountingFile(io.BytesIO):
        reads: list[int]

        def readinto(self, buffer: Any) -> int:
            self.reads.append(len(buffer))
            return super().readinto(buffer)

    file = CountingFile(_data(10_000))
    file.reads = []
    monkeypatch.setattr(constants, "SENDFILE_FALLBACK_READBUFFER_SIZE", 4096)

    async def main() -> int:
        async with _connected(any_loop) as (sender, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sock_sendfile(sender, file)
            sender.shutdown(socket.SHUT_WR)
            assert await reading == file.getvalue()
            return sent

    assert run(any_loop, main()) == 10_000
    assert file.reads == [4096, 4096, 4096, 4096]


def test_sock_sendfile_without_os_sendfile_or_fallback(
    any_loop: asyncio.AbstractEventLoop,
    big_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file, _ = big_file
    _without_os_sendfile(monkeypatch)

    async def main() -> None:
        async with _connected(any_loop) as (sender, _receiver):
            await any_loop.sock_sendfile(sender, file, fallback=False)

    with pytest.raises(
        asyncio.SendfileNotAvailableError, match=r"^os\.sendfile\(\) is not available$"
    ):
        run(any_loop, main())
    assert file.tell() == 0


# -- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "count", "error", "message"),
    [
        (0, "count", TypeError, "count must be a positive integer (got 'count')"),
        (0, 1.5, TypeError, "count must be a positive integer (got 1.5)"),
        (0, 0, ValueError, "count must be a positive integer (got 0)"),
        (0, -1, ValueError, "count must be a positive integer (got -1)"),
        ("offset", None, TypeError, "offset must be a non-negative integer (got 'offset')"),
        (None, None, TypeError, "offset must be a non-negative integer (got None)"),
        (-1, None, ValueError, "offset must be a non-negative integer (got -1)"),
        # count is checked before offset.
        (-1, -1, ValueError, "count must be a positive integer (got -1)"),
    ],
)
def test_sock_sendfile_bad_offset_or_count(
    any_loop: asyncio.AbstractEventLoop,
    big_file: tuple[Any, bytes],
    offset: Any,
    count: Any,
    error: type[Exception],
    message: str,
) -> None:
    file, _ = big_file
    with _nonblocking(socket.socket()) as sock, pytest.raises(error, match=re.escape(message)):
        run(any_loop, any_loop.sock_sendfile(sock, file, offset, count))
    assert file.tell() == 0


def test_sock_sendfile_text_file(any_loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("text")
    with (
        path.open(encoding="utf-8") as file,
        _nonblocking(socket.socket()) as sock,
        pytest.raises(ValueError, match=r"^file should be opened in binary mode$"),
    ):
        run(any_loop, any_loop.sock_sendfile(sock, file))


def test_sock_sendfile_datagram_socket(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    with (
        _nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock,
        pytest.raises(ValueError, match=r"^only SOCK_STREAM type sockets are supported$"),
    ):
        run(any_loop, any_loop.sock_sendfile(sock, file))


def test_sock_sendfile_blocking_socket_in_debug_mode(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    any_loop.set_debug(True)
    with socket.socket() as sock, pytest.raises(ValueError, match=r"^the socket must be non-"):
        run(any_loop, any_loop.sock_sendfile(sock, file))


def test_sock_sendfile_ssl_socket(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    context = ssl.create_default_context()
    with context.wrap_socket(socket.socket(), server_hostname="example.org") as sock:
        sock.setblocking(False)
        with pytest.raises(TypeError, match=r"^Socket cannot be of type SSLSocket$"):
            run(any_loop, any_loop.sock_sendfile(sock, file))


# -- cancellation and descriptors -----------------------------------------------------------


def test_sock_sendfile_cancelled_mid_transfer(
    any_loop: asyncio.AbstractEventLoop, slow_file: tuple[Any, bytes]
) -> None:
    file, data = slow_file

    async def main() -> bytes:
        async with _connected(any_loop, slow=True) as (sender, receiver):
            sending = asyncio.ensure_future(any_loop.sock_sendfile(sender, file))
            # Far less than the file, and more than the buffers hold: the transfer is
            # under way and must wait for the reader.
            head = await _read_exactly(any_loop, receiver, 200_000)
            assert not sending.done()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            # Nothing is left watching the socket, and it still works.
            assert not any_loop.remove_writer(sender)
            await any_loop.sock_sendall(sender, b"after")
            sender.shutdown(socket.SHUT_WR)
            return head + await _read_to_end(any_loop, receiver)

    received = run(any_loop, main())
    assert received.endswith(b"after")
    partial = received[: -len(b"after")]
    assert 200_000 <= len(partial) < len(data)
    assert partial == data[: len(partial)]
    if isinstance(any_loop, sansloop.EventLoop):
        # Better than asyncio, whose zero-copy path forgets the position when cancelled:
        # the documented promise, "the file position is always updated".
        assert file.tell() == len(partial)


def test_sock_sendfile_fallback_cancelled_mid_transfer(
    any_loop: asyncio.AbstractEventLoop,
    slow_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file, data = slow_file
    _without_os_sendfile(monkeypatch)
    # Small chunks: many are sent by the time the reader has 200 kB.
    monkeypatch.setattr(constants, "SENDFILE_FALLBACK_READBUFFER_SIZE", 16384)

    async def main() -> bytes:
        async with _connected(any_loop, slow=True) as (sender, receiver):
            sending = asyncio.ensure_future(any_loop.sock_sendfile(sender, file))
            head = await _read_exactly(any_loop, receiver, 200_000)
            assert not sending.done()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert not any_loop.remove_writer(sender)
            sender.shutdown(socket.SHUT_WR)
            return head + await _read_to_end(any_loop, receiver)

    received = run(any_loop, main())
    assert 200_000 <= len(received) < len(data)
    assert received == data[: len(received)]
    # After the chunks sock_sendall completed (the cancelled one may have gone in part).
    assert 200_000 - 16384 <= file.tell() <= len(received)
    assert file.tell() % 16384 == 0


def test_sock_sendfile_to_a_peer_that_goes_away(
    any_loop: asyncio.AbstractEventLoop, slow_file: tuple[Any, bytes]
) -> None:
    file, _ = slow_file

    async def main() -> None:
        async with _connected(any_loop, slow=True) as (sender, receiver):
            sending = asyncio.ensure_future(any_loop.sock_sendfile(sender, file))
            await _read_exactly(any_loop, receiver, 100_000)
            # A close with unread data resets the connection.
            receiver.close()
            with pytest.raises(ConnectionError):
                await sending
            assert not any_loop.remove_writer(sender)

    run(any_loop, main())
    assert 100_000 <= file.tell() < SLOW


def test_sock_sendfile_on_a_transport_socket_is_refused(
    any_loop: asyncio.AbstractEventLoop, slow_file: tuple[Any, bytes]
) -> None:
    # asyncio refuses once the transfer would block; sansloop at once.  Either way, a
    # RuntimeError before any byte arrives out of order with the transport's own.
    file, _ = slow_file

    async def main() -> None:
        async with _connected(any_loop, slow=True) as (sender, _receiver):
            transport, _ = await any_loop.connect_accepted_socket(asyncio.Protocol, sender)
            try:
                with pytest.raises(RuntimeError, match=r"is used by transport"):
                    await any_loop.sock_sendfile(sender, file)
            finally:
                transport.abort()
                await asyncio.sleep(0)

    run(any_loop, main())


def test_no_descriptor_leaks(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    fd_count: Callable[[], int],
    slow_file: tuple[Any, bytes],
) -> None:
    file, data = slow_file
    before = fd_count()
    loop = loop_factory()
    try:

        async def main() -> None:
            async with _connected(loop, slow=True) as (sender, receiver):
                reading = asyncio.ensure_future(_read_exactly(loop, receiver, 1000))
                assert await loop.sock_sendfile(sender, file, 0, 1000) == 1000
                assert await reading == data[:1000]
                sending = asyncio.ensure_future(loop.sock_sendfile(sender, file))
                await _read_exactly(loop, receiver, 100_000)
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            async with _transport(loop, slow=True) as (transport, _protocol, receiver):
                sending = asyncio.ensure_future(loop.sendfile(transport, file))
                await _read_exactly(loop, receiver, 100_000)
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending

        run(loop, main())
    finally:
        loop.close()
    assert fd_count() == before


# -- drivers without readiness callbacks ------------------------------------------------------


class _SocketsOnlyDriver:
    """The selectors driver without ``add_reader``/``add_writer``, as a completion driver."""

    _HIDDEN = frozenset({"add_reader", "remove_reader", "add_writer", "remove_writer"})

    def __init__(self) -> None:
        self._inner = SelectorDriver()

    def __getattr__(self, name: str) -> Any:
        if name in self._HIDDEN:
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture
def sockets_only_loop() -> Iterator[sansloop.EventLoop]:
    loop = sansloop.EventLoop(driver=_SocketsOnlyDriver())  # type: ignore[arg-type]
    try:
        yield loop
    finally:
        loop.close()


def test_driver_without_readiness_uses_the_fallback(
    sockets_only_loop: sansloop.EventLoop, big_file: tuple[Any, bytes]
) -> None:
    loop = sockets_only_loop
    file, data = big_file

    async def main() -> tuple[int, bytes]:
        async with _connected(loop) as (sender, receiver):
            with pytest.raises(asyncio.SendfileNotAvailableError, match="readiness callbacks"):
                await loop.sock_sendfile(sender, file, fallback=False)
            reading = asyncio.ensure_future(_read_to_end(loop, receiver))
            sent = await loop.sock_sendfile(sender, file, 10, 300_000)
            sender.shutdown(socket.SHUT_WR)
            return sent, await reading

    sent, received = run(loop, main())
    assert sent == 300_000
    assert received == data[10:300_010]
    assert file.tell() == 300_010


# -- loop.sendfile over transports ------------------------------------------------------------


class _Recorder(asyncio.Protocol):
    """Records what the transport tells its protocol."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.events: list[str] = []
        self.data = bytearray()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("connection_lost")
        self.lost.set_result(exc)


@contextlib.asynccontextmanager
async def _transport(
    loop: asyncio.AbstractEventLoop, *, slow: bool = False
) -> AsyncIterator[tuple[asyncio.Transport, _Recorder, socket.socket]]:
    """A socket transport on one end of a TCP pair, and the plain socket at the other."""
    async with _connected(loop, slow=slow) as (sender, receiver):
        transport, protocol = await loop.connect_accepted_socket(_Recorder, sender)
        try:
            yield transport, protocol, receiver
        finally:
            transport.abort()
            await protocol.lost


def test_sendfile_whole_file(
    any_loop: asyncio.AbstractEventLoop, unreadable_file: tuple[Any, bytes]
) -> None:
    file, data = unreadable_file

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop) as (transport, protocol, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sendfile(transport, file)
            transport.write_eof()
            received = await reading
            assert transport.get_protocol() is protocol
            assert transport.is_reading()
            return sent, received

    sent, received = run(any_loop, main())
    assert sent == len(data)
    assert received == data
    assert file.tell() == len(data)


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
def test_sendfile_keeps_order_with_writes_before_and_after(
    any_loop: asyncio.AbstractEventLoop,
    slow_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
    native: bool,
) -> None:
    file, data = slow_file
    if not native:
        _without_os_sendfile(monkeypatch)
    prefix = b"PREFIX__" * 100_000  # More than the buffers take: much of it waits in the transport.
    suffix = b"--SUFFIX" * 1024

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop, slow=True) as (transport, _protocol, receiver):
            transport.write(prefix)
            assert transport.get_write_buffer_size() > 0
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sendfile(transport, file, 100, SLOW - 200)
            transport.write(suffix)
            transport.write_eof()
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == SLOW - 200
    assert received == prefix + data[100:-100] + suffix
    assert file.tell() == SLOW - 100


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
def test_sendfile_refuses_writes_while_in_progress(
    any_loop: asyncio.AbstractEventLoop,
    slow_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
    native: bool,
) -> None:
    file, data = slow_file
    if not native:
        _without_os_sendfile(monkeypatch)

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop, slow=True) as (transport, _protocol, receiver):
            sending = asyncio.ensure_future(any_loop.sendfile(transport, file))
            head = await _read_exactly(any_loop, receiver, 100_000)
            assert not sending.done()
            if native:
                with pytest.raises(
                    RuntimeError, match=r"^unable to write; sendfile is in progress$"
                ):
                    transport.write(b"data")
                # "unable to writelines" from 3.12 on; 3.11's asyncio says "write".
                with pytest.raises(RuntimeError, match=r"sendfile is in progress$"):
                    transport.writelines([b"data"])
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await sending
            transport.write(b"after")
            transport.write_eof()
            return sent, head + await reading

    sent, received = run(any_loop, main())
    assert sent == len(data)
    assert received == data + b"after"


@pytest.mark.parametrize(("offset", "count"), [(1000, 100), (0, 1), (SLOW - 5, 1000)])
def test_sendfile_offset_and_count(
    any_loop: asyncio.AbstractEventLoop,
    slow_file: tuple[Any, bytes],
    offset: int,
    count: int,
) -> None:
    file, data = slow_file
    expected = data[offset : offset + count]

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop) as (transport, _protocol, receiver):
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sendfile(transport, file, offset, count)
            transport.write_eof()
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(expected)
    assert received == expected
    assert file.tell() == offset + len(expected)


def test_sendfile_fallback_without_os_sendfile(
    any_loop: asyncio.AbstractEventLoop,
    slow_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Through transport.write under flow control: the stand-in protocol hears pause and
    # resume, the real one hears nothing and gets its place, and its reading, back.
    file, data = slow_file
    _without_os_sendfile(monkeypatch)

    async def main() -> tuple[int, bytes, list[str], bytes]:
        async with _transport(any_loop, slow=True) as (transport, protocol, receiver):
            transport.set_write_buffer_limits(high=64 * 1024)
            reading = asyncio.ensure_future(_read_exactly(any_loop, receiver, len(data)))
            # Sent while reading is paused: it must reach the protocol afterwards.
            await any_loop.sock_sendall(receiver, b"ping")
            sent = await any_loop.sendfile(transport, file)
            received = await reading
            assert transport.get_protocol() is protocol
            assert transport.is_reading()
            while len(protocol.data) < 4:
                await asyncio.sleep(0.001)
            return sent, received, list(protocol.events), bytes(protocol.data)

    sent, received, events, pinged = run(any_loop, main())
    assert sent == len(data)
    assert received == data
    assert events == []
    assert pinged == b"ping"
    assert file.tell() == len(data)


def test_sendfile_fallback_with_a_paused_protocol(any_loop: asyncio.AbstractEventLoop) -> None:
    # A protocol paused when the transfer starts is resumed when it ends (asyncio's rule).
    # Only a fallback-only transport (TLS) starts paused: a socket transport's native attempt
    # drains the buffer first.  One small chunk, written once the buffer is below the
    # low-water mark: the transport does not pause again, so resume_writing() is the
    # fallback's.
    file = io.BytesIO(b"y" * 100)

    async def main() -> tuple[list[str], bytes]:
        async with _transport(any_loop, slow=True) as (transport, protocol, receiver):
            # What a TLS transport says (asyncio's marker; there is no public one).
            setattr(transport, "_sendfile_compatible", _FALLBACK)  # noqa: B010 (private marker)
            transport.set_write_buffer_limits(high=1024)
            transport.write(b"x" * 1_000_000)
            assert protocol.events == ["pause_writing"]
            reading = asyncio.ensure_future(_read_exactly(any_loop, receiver, 1_000_100))
            assert await any_loop.sendfile(transport, file) == 100
            events = list(protocol.events)
            return events, await reading

    events, received = run(any_loop, main())
    assert events == ["pause_writing", "resume_writing"]
    assert received == b"x" * 1_000_000 + b"y" * 100


def test_sendfile_fallback_respects_flow_control(
    any_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each chunk waits until the transport is below its high-water mark, so the buffer
    # never holds more than that plus one chunk, however slow the reader.
    _without_os_sendfile(monkeypatch)
    high = 32 * 1024
    chunk = 16384  # asyncio's chunk for transports

    class Recording(io.BytesIO):
        transport: asyncio.Transport
        sizes: list[int]

        def readinto(self, buffer: Any) -> int:
            self.sizes.append(self.transport.get_write_buffer_size())
            return super().readinto(buffer)

    data = _data(1024 * 1024)
    file = Recording(data)
    file.sizes = []

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop, slow=True) as (transport, _protocol, receiver):
            transport.set_write_buffer_limits(high=high)
            file.transport = transport
            received = bytearray()

            async def read_slowly() -> None:
                # 1 kB per loop iteration (a ready sock_recv does not yield by itself).
                while len(received) < len(data):
                    received.extend(await any_loop.sock_recv(receiver, 1024))
                    await asyncio.sleep(0)

            reading = asyncio.ensure_future(read_slowly())
            sent = await any_loop.sendfile(transport, file)
            await reading
            return sent, bytes(received)

    sent, received = run(any_loop, main())
    assert sent == len(data)
    if isinstance(any_loop, sansloop.EventLoop) or sys.version_info < (3, 12):
        # asyncio 3.12+ corrupts the bytes here: its write() keeps a view of the buffer
        # that the fallback reuses for the next chunk, whenever the transport buffers it.
        assert received == data
    assert len(file.sizes) == len(data) // chunk + 1
    assert max(file.sizes) <= high + chunk


def test_sendfile_without_os_sendfile_or_fallback(
    any_loop: asyncio.AbstractEventLoop,
    big_file: tuple[Any, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file, _ = big_file
    _without_os_sendfile(monkeypatch)

    async def main() -> bytes:
        async with _transport(any_loop) as (transport, protocol, receiver):
            with pytest.raises(
                asyncio.SendfileNotAvailableError, match=r"^os\.sendfile\(\) is not available$"
            ):
                await any_loop.sendfile(transport, file, fallback=False)
            # Left as it was: writable, reading, the same protocol.
            assert transport.get_protocol() is protocol
            assert transport.is_reading()
            transport.write(b"still usable")
            transport.write_eof()
            return await _read_to_end(any_loop, receiver)

    assert run(any_loop, main()) == b"still usable"
    assert file.tell() == 0


def test_sendfile_bytesio_uses_the_fallback(any_loop: asyncio.AbstractEventLoop) -> None:
    data = _data(100_000)
    file = io.BytesIO(data)

    async def main() -> tuple[int, bytes]:
        async with _transport(any_loop) as (transport, _protocol, receiver):
            with pytest.raises(asyncio.SendfileNotAvailableError, match=r"^not a regular file$"):
                await any_loop.sendfile(transport, file, fallback=False)
            reading = asyncio.ensure_future(_read_to_end(any_loop, receiver))
            sent = await any_loop.sendfile(transport, file, 10)
            transport.write_eof()
            return sent, await reading

    sent, received = run(any_loop, main())
    assert sent == len(data) - 10
    assert received == data[10:]
    assert file.tell() == len(data)


def test_sendfile_checks_arguments_like_sock_sendfile(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file

    async def main() -> None:
        async with _transport(any_loop) as (transport, _protocol, _receiver):
            with pytest.raises(ValueError, match=re.escape("count must be a positive integer")):
                await any_loop.sendfile(transport, file, 0, 0)
            with pytest.raises(TypeError, match=re.escape("offset must be a non-negative")):
                await any_loop.sendfile(transport, file, "0")
            assert transport.is_reading()
            transport.write(b"fine")

    run(any_loop, main())


def test_sendfile_on_a_closing_transport(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file

    async def main() -> None:
        async with _transport(any_loop) as (transport, _protocol, _receiver):
            transport.close()
            with pytest.raises(RuntimeError, match=r"^Transport is closing$"):
                await any_loop.sendfile(transport, file)

    run(any_loop, main())
    assert file.tell() == 0


class _FakeTransport(asyncio.Transport):
    def is_closing(self) -> bool:
        return False


class _FallbackOnlyTransport(_FakeTransport):
    _sendfile_compatible = _FALLBACK


def test_sendfile_on_an_unsupported_transport(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    with pytest.raises(RuntimeError, match=r"^sendfile is not supported for transport <"):
        run(any_loop, any_loop.sendfile(_FakeTransport(), file))


def test_sendfile_without_fallback_on_a_fallback_only_transport(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    with pytest.raises(RuntimeError, match=r"^fallback is disabled and native sendfile is not"):
        run(any_loop, any_loop.sendfile(_FallbackOnlyTransport(), file, fallback=False))


def test_sendfile_fallback_needs_flow_control(
    any_loop: asyncio.AbstractEventLoop, big_file: tuple[Any, bytes]
) -> None:
    file, _ = big_file
    with pytest.raises(TypeError, match=r"^transport should be _FlowControlMixin instance$"):
        run(any_loop, any_loop.sendfile(_FallbackOnlyTransport(), file))


def test_sendfile_cancelled_mid_transfer(
    any_loop: asyncio.AbstractEventLoop, slow_file: tuple[Any, bytes]
) -> None:
    file, data = slow_file

    async def main() -> tuple[bytes, int]:
        async with _transport(any_loop, slow=True) as (transport, protocol, receiver):
            sending = asyncio.ensure_future(any_loop.sendfile(transport, file))
            head = await _read_exactly(any_loop, receiver, 100_000)
            assert not sending.done()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            # The transport is whole again: writable, reading, its own protocol.
            assert transport.get_protocol() is protocol
            assert transport.is_reading()
            transport.write(b"after")
            transport.write_eof()
            received = head + await _read_to_end(any_loop, receiver)
            fd = transport.get_extra_info("socket").fileno()
            transport.close()
            await protocol.lost
        # The transport is gone and nothing is left registered on its descriptor.
        assert not any_loop.remove_writer(fd)
        return received, fd

    received, _ = run(any_loop, main())
    assert received.endswith(b"after")
    partial = received[: -len(b"after")]
    assert 100_000 <= len(partial) < len(data)
    assert partial == data[: len(partial)]
    if isinstance(any_loop, sansloop.EventLoop):
        assert file.tell() == len(partial)  # asyncio's zero-copy path forgets it.


def test_sendfile_to_a_peer_that_goes_away(
    any_loop: asyncio.AbstractEventLoop, slow_file: tuple[Any, bytes]
) -> None:
    file, _ = slow_file

    async def main() -> _Recorder:
        async with _transport(any_loop, slow=True) as (transport, protocol, receiver):
            sending = asyncio.ensure_future(any_loop.sendfile(transport, file))
            await _read_exactly(any_loop, receiver, 100_000)
            receiver.close()
            with pytest.raises(ConnectionError):
                await sending
            # Reading resumed, so the transport learns of the reset by itself.
            await protocol.lost
            assert transport.is_closing()
            return protocol

    run(any_loop, main())
    assert 100_000 <= file.tell() < SLOW


# -- where sansloop does better than asyncio ---------------------------------------------------

#: Every selector class this platform has: each removes a closed descriptor its own way.
_SELECTORS = [
    name
    for name in ("EpollSelector", "KqueueSelector", "PollSelector", "SelectSelector")
    if hasattr(selectors, name)
]


@pytest.fixture(params=_SELECTORS)
def selector_loop(request: pytest.FixtureRequest) -> Iterator[sansloop.EventLoop]:
    """A sansloop loop on the selectors driver with each selector class in turn."""
    new = sansloop.EventLoop(driver=SelectorDriver(getattr(selectors, request.param)()))
    try:
        yield new
    finally:
        new.close()


def test_transport_closed_mid_transfer_fails_the_call(
    selector_loop: sansloop.EventLoop, slow_file: tuple[Any, bytes]
) -> None:
    # asyncio's close() removes the transfer's writer: the call never returns.  Here the
    # transfer ends in the callback that closes the socket, before any selector sees it.
    loop = selector_loop
    file, _ = slow_file

    async def main() -> None:
        async with _transport(loop, slow=True) as (transport, protocol, receiver):
            sending = asyncio.ensure_future(loop.sendfile(transport, file))
            await _read_exactly(loop, receiver, 100_000)
            fd = transport.get_extra_info("socket").fileno()
            transport.close()
            with pytest.raises(ConnectionError, match=r"^Connection is closed by peer$"):
                await sending
            assert await protocol.lost is None
            assert not loop.remove_writer(fd)

    run(loop, main())
    assert 100_000 <= file.tell() < SLOW


def test_transport_aborted_mid_transfer_fails_the_call(
    selector_loop: sansloop.EventLoop, slow_file: tuple[Any, bytes]
) -> None:
    loop = selector_loop
    file, _ = slow_file

    async def main() -> None:
        async with _transport(loop, slow=True) as (transport, _protocol, receiver):
            sending = asyncio.ensure_future(loop.sendfile(transport, file))
            await _read_exactly(loop, receiver, 100_000)
            transport.abort()
            with pytest.raises(ConnectionError):
                await sending

    run(loop, main())


def test_cancelled_drain_gives_the_transport_back(
    loop: sansloop.EventLoop, big_file: tuple[Any, bytes]
) -> None:
    # asyncio leaves a transport whose sendfile was cancelled while its buffer drained
    # refusing every write ("sendfile is in progress") and not reading, for good.
    file, _ = big_file

    async def main() -> bytes:
        async with _transport(loop, slow=True) as (transport, _protocol, receiver):
            transport.write(b"b" * 1_000_000)
            sending = asyncio.ensure_future(loop.sendfile(transport, file))
            await asyncio.sleep(0)
            assert not sending.done()
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert transport.is_reading()
            transport.write(b"after")
            transport.write_eof()
            return await _read_to_end(loop, receiver)

    assert run(loop, main()) == b"b" * 1_000_000 + b"after"
    assert file.tell() == 0


def test_sendfile_twice_at_once(loop: sansloop.EventLoop, slow_file: tuple[Any, bytes]) -> None:
    # asyncio fails the second call with a KeyError from its descriptor registry.
    file, data = slow_file

    async def main() -> tuple[int, bytes]:
        async with _transport(loop, slow=True) as (transport, _protocol, receiver):
            first = asyncio.ensure_future(loop.sendfile(transport, file))
            head = await _read_exactly(loop, receiver, 100_000)
            with pytest.raises(RuntimeError, match=r"^Empty waiter is already set$"):
                await loop.sendfile(transport, file)
            reading = asyncio.ensure_future(_read_to_end(loop, receiver))
            sent = await first
            transport.write_eof()
            return sent, head + await reading

    sent, received = run(loop, main())
    assert sent == len(data)
    assert received == data
