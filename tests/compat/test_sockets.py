"""The sock_* loop methods through the public API, with real sockets.

Behaviour tests run on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions; the few where sansloop deliberately does better say so.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
from _net import HAS_IPV6, HAS_UNIX, run

import sansloop
from sansloop.drivers import Driver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_T = TypeVar("_T")


def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def _listener(family: int = socket.AF_INET, backlog: int = 100) -> Iterator[socket.socket]:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(backlog)
        srv.setblocking(False)
        yield srv


@contextlib.asynccontextmanager
async def _connected(
    loop: asyncio.AbstractEventLoop, family: int = socket.AF_INET
) -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair made with sock_accept and sock_connect."""
    with _listener(family) as srv:
        client = _nonblocking(socket.socket(family))
        try:
            accepting = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(client, srv.getsockname())
            conn, _ = await accepting
            with conn:
                yield client, conn
        finally:
            client.close()


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        data = await loop.sock_recv(sock, n - len(chunks))
        if not data:
            break
        chunks += data
    return bytes(chunks)


# -- stream transfers ---------------------------------------------------------------------


def test_recv_waits_for_data(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        receiving = asyncio.ensure_future(any_loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        assert not receiving.done()
        await any_loop.sock_sendall(b, b"hello")
        return await receiving

    assert run(any_loop, main()) == b"hello"


def test_byte_by_byte(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    message = bytes(range(256))

    async def reader() -> bytes:
        got = bytearray()
        for _ in message:
            got += await any_loop.sock_recv(a, 1)
        return bytes(got)

    async def writer() -> None:
        for i in range(len(message)):
            await any_loop.sock_sendall(b, message[i : i + 1])
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def main() -> bytes:
        got, _ = await asyncio.gather(reader(), writer())
        return got

    assert run(any_loop, main()) == message


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_bulk_sendall_and_recv_into(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket], kind: str
) -> None:
    a, b = pair
    raw = os.urandom(1 << 16) * 64  # 4 MiB: far more than the socket buffers hold
    data: Any = {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "memoryview": memoryview(raw),
    }[kind]

    async def reader() -> str:
        digest = hashlib.sha256()
        buf = bytearray(100_000)
        view = memoryview(buf)
        total = 0
        while total < len(raw):
            n = await any_loop.sock_recv_into(a, buf)
            assert n > 0
            digest.update(view[:n])
            total += n
        assert total == len(raw)
        return digest.hexdigest()

    async def main() -> str:
        reading = asyncio.ensure_future(reader())
        await any_loop.sock_sendall(b, data)
        return await reading

    assert run(any_loop, main()) == hashlib.sha256(raw).hexdigest()


def test_full_duplex_on_one_socket(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    size = 3 << 20
    out_a, out_b = os.urandom(size), os.urandom(size)

    async def main() -> tuple[bytes, bytes]:
        # Both sides send more than the buffers hold before reading: only concurrent
        # reading and writing on each socket gets this through.
        _, _, got_b, got_a = await asyncio.gather(
            any_loop.sock_sendall(a, out_a),
            any_loop.sock_sendall(b, out_b),
            _read_exactly(any_loop, b, size),
            _read_exactly(any_loop, a, size),
        )
        return got_a, got_b

    got_a, got_b = run(any_loop, main())
    assert got_b == out_a
    assert got_a == out_b


def test_many_sockets_at_once(any_loop: asyncio.AbstractEventLoop) -> None:
    pairs = [tuple(map(_nonblocking, socket.socketpair())) for _ in range(50)]
    try:

        async def echo(a: socket.socket, b: socket.socket, i: int) -> bytes:
            receiving = asyncio.ensure_future(any_loop.sock_recv(b, 100))
            await asyncio.sleep(0)
            await any_loop.sock_sendall(a, b"msg%d" % i)
            return await receiving

        async def main() -> list[bytes]:
            return await asyncio.gather(*(echo(a, b, i) for i, (a, b) in enumerate(pairs)))

        assert run(any_loop, main()) == [b"msg%d" % i for i in range(50)]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_recv_at_end_of_stream(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> tuple[bytes, bytes]:
        pending = asyncio.ensure_future(any_loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        b.shutdown(socket.SHUT_WR)
        first = await pending
        return first, await any_loop.sock_recv(a, 10)

    assert run(any_loop, main()) == (b"", b"")


def test_sendall_of_nothing(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    assert run(any_loop, any_loop.sock_sendall(pair[1], b"")) is None


def test_sendall_of_a_str(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'str'$"):
        run(any_loop, any_loop.sock_sendall(pair[1], "text"))  # type: ignore[arg-type]


def test_recv_on_a_closed_socket(any_loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    a.close()
    b.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        run(any_loop, any_loop.sock_recv(a, 10))


# -- cancellation -------------------------------------------------------------------------


def test_cancelled_recv_loses_no_data(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        first = asyncio.ensure_future(any_loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await any_loop.sock_sendall(b, b"after")
        await asyncio.sleep(0.01)
        return await any_loop.sock_recv(a, 100)

    assert run(any_loop, main()) == b"after"


def test_cancelled_sendall_stops_sending(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> int:
        sending = asyncio.ensure_future(any_loop.sock_sendall(b, b"x" * (16 << 20)))
        await asyncio.sleep(0.02)
        assert not sending.done()
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        # Drain what was sent before the cancellation; nothing more may arrive.
        total = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            while True:
                try:
                    chunk = a.recv(1 << 20)
                except BlockingIOError:
                    break
                total += len(chunk)
        return total

    sent = run(any_loop, main())
    assert 0 < sent < 16 << 20


def test_cancelled_accept_then_accept_again(any_loop: asyncio.AbstractEventLoop) -> None:
    with _listener() as srv:

        async def main() -> bytes:
            first = asyncio.ensure_future(any_loop.sock_accept(srv))
            await asyncio.sleep(0.01)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            with socket.create_connection(srv.getsockname()) as client:
                conn, _ = await any_loop.sock_accept(srv)
                with conn:
                    client.sendall(b"second")
                    return await any_loop.sock_recv(conn, 10)

        assert run(any_loop, main()) == b"second"


def test_wait_for_timeout_on_recv(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    with pytest.raises(TimeoutError):
        run(any_loop, asyncio.wait_for(any_loop.sock_recv(a, 1), 0.01))


# -- connecting and accepting ------------------------------------------------------------

_FAMILIES = [
    pytest.param(socket.AF_INET, id="ipv4"),
    pytest.param(
        socket.AF_INET6,
        id="ipv6",
        marks=pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback"),
    ),
]


@pytest.mark.parametrize("family", _FAMILIES)
def test_tcp_echo(any_loop: asyncio.AbstractEventLoop, family: int) -> None:
    async def main() -> bytes:
        async with _connected(any_loop, family) as (client, conn):
            assert client.getpeername()[:2] == conn.getsockname()[:2]
            assert conn.gettimeout() == 0  # accepted sockets are non-blocking
            await any_loop.sock_sendall(client, b"ping")
            await any_loop.sock_sendall(conn, await any_loop.sock_recv(conn, 10))
            return await any_loop.sock_recv(client, 10)

    assert run(any_loop, main()) == b"ping"


def test_connect_resolves_host_names(any_loop: asyncio.AbstractEventLoop) -> None:
    with _listener() as srv:
        port = srv.getsockname()[1]

        async def main() -> Any:
            with _nonblocking(socket.socket()) as client:
                accepting = asyncio.ensure_future(any_loop.sock_accept(srv))
                await any_loop.sock_connect(client, ("localhost", port))
                conn, _ = await accepting
                conn.close()
                return client.getpeername()

        assert run(any_loop, main()) == ("127.0.0.1", port)


def test_connect_to_an_unknown_host(any_loop: asyncio.AbstractEventLoop) -> None:
    with _nonblocking(socket.socket()) as client, pytest.raises(socket.gaierror):
        run(any_loop, any_loop.sock_connect(client, ("no-such-host.invalid", 80)))


@pytest.mark.parametrize("family", _FAMILIES)
def test_connection_refused(any_loop: asyncio.AbstractEventLoop, family: int) -> None:
    with _listener(family) as srv:
        address = srv.getsockname()
    # Nobody listens there any more.
    with _nonblocking(socket.socket(family)) as client, pytest.raises(ConnectionRefusedError):
        run(any_loop, any_loop.sock_connect(client, address))


def test_peer_reset(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with _connected(any_loop) as (client, conn):
            receiving = asyncio.ensure_future(any_loop.sock_recv(client, 10))
            await asyncio.sleep(0.01)
            # Linger 0: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            await receiving

    with pytest.raises(ConnectionResetError):
        run(any_loop, main())


def test_sendall_to_a_reset_peer(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with _connected(any_loop) as (client, conn):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            await asyncio.sleep(0.01)
            for _ in range(100):
                await any_loop.sock_sendall(client, b"x" * 65536)

    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        run(any_loop, main())


def test_accept_many_connections(any_loop: asyncio.AbstractEventLoop) -> None:
    count = 200

    async def client(address: Any, i: int) -> bytes:
        with _nonblocking(socket.socket()) as sock:
            await any_loop.sock_connect(sock, address)
            await any_loop.sock_sendall(sock, b"%d" % i)
            return await any_loop.sock_recv(sock, 10)

    async def server(srv: socket.socket) -> None:
        async def serve(conn: socket.socket) -> None:
            with conn:
                await any_loop.sock_sendall(conn, await any_loop.sock_recv(conn, 10))

        handlers = []
        for _ in range(count):
            conn, _ = await any_loop.sock_accept(srv)
            handlers.append(asyncio.ensure_future(serve(conn)))
        await asyncio.gather(*handlers)

    async def main(srv: socket.socket) -> list[bytes]:
        serving = asyncio.ensure_future(server(srv))
        replies = await asyncio.gather(*(client(srv.getsockname(), i) for i in range(count)))
        await serving
        return replies

    with _listener(backlog=count) as srv:
        assert run(any_loop, main(srv)) == [b"%d" % i for i in range(count)]


@pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")
def test_unix_sockets(any_loop: asyncio.AbstractEventLoop) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        with socket.socket(socket.AF_UNIX) as srv:
            srv.bind(path)
            srv.listen()
            srv.setblocking(False)

            async def main() -> bytes:
                with _nonblocking(socket.socket(socket.AF_UNIX)) as client:
                    accepting = asyncio.ensure_future(any_loop.sock_accept(srv))
                    await any_loop.sock_connect(client, path)
                    conn, _ = await accepting
                    with conn:
                        await any_loop.sock_sendall(conn, b"unix")
                        return await any_loop.sock_recv(client, 10)

            assert run(any_loop, main()) == b"unix"


@pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")
def test_unix_connect_errors(any_loop: asyncio.AbstractEventLoop) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        with (
            _nonblocking(socket.socket(socket.AF_UNIX)) as client,
            pytest.raises(FileNotFoundError),
        ):
            run(any_loop, any_loop.sock_connect(client, path))
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(path)  # bound, never listening
            with (
                _nonblocking(socket.socket(socket.AF_UNIX)) as client,
                pytest.raises(ConnectionRefusedError),
            ):
                run(any_loop, any_loop.sock_connect(client, path))


# -- datagrams ----------------------------------------------------------------------------


@pytest.fixture(params=_FAMILIES)
def udp_pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    family = request.param
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    a = _nonblocking(socket.socket(family, socket.SOCK_DGRAM))
    b = _nonblocking(socket.socket(family, socket.SOCK_DGRAM))
    try:
        a.bind((host, 0))
        b.bind((host, 0))
        yield a, b
    finally:
        a.close()
        b.close()


def test_udp_sendto_and_recvfrom(
    any_loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> tuple[Any, Any, int]:
        receiving = asyncio.ensure_future(any_loop.sock_recvfrom(b, 1024))
        await asyncio.sleep(0.01)
        sent = await any_loop.sock_sendto(a, b"datagram", b.getsockname())
        return await receiving, a.getsockname(), sent

    (data, sender), expected, sent = run(any_loop, main())
    assert data == b"datagram"
    assert sent == len(b"datagram")
    assert sender[:2] == expected[:2]


def test_udp_recvfrom_truncates_to_bufsize(
    any_loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> list[bytes]:
        await any_loop.sock_sendto(a, b"0123456789", b.getsockname())
        await any_loop.sock_sendto(a, b"second", b.getsockname())
        await asyncio.sleep(0.01)
        first, _ = await any_loop.sock_recvfrom(b, 4)
        second, _ = await any_loop.sock_recvfrom(b, 100)
        return [first, second]

    # The rest of a datagram too long for the buffer is gone, not read next time.
    assert run(any_loop, main()) == [b"0123", b"second"]


@pytest.mark.parametrize("nbytes", [0, 3])
def test_udp_recvfrom_into(
    any_loop: asyncio.AbstractEventLoop,
    udp_pair: tuple[socket.socket, socket.socket],
    nbytes: int,
) -> None:
    a, b = udp_pair
    buf = bytearray(8)

    async def main() -> tuple[int, Any]:
        receiving = asyncio.ensure_future(any_loop.sock_recvfrom_into(b, buf, nbytes))
        await asyncio.sleep(0.01)
        await any_loop.sock_sendto(a, b"abcdef", b.getsockname())
        return await receiving

    n, sender = run(any_loop, main())
    expected = b"abcdef"[: nbytes or len(buf)]
    assert n == len(expected)
    assert bytes(buf[:n]) == expected
    assert sender[:2] == a.getsockname()[:2]


def test_udp_many_datagrams_in_order(
    any_loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> list[bytes]:
        got: list[bytes] = []
        for i in range(100):
            await any_loop.sock_sendto(a, b"%03d" % i, b.getsockname())
            data, _ = await any_loop.sock_recvfrom(b, 16)
            got.append(data)
        return got

    assert run(any_loop, main()) == [b"%03d" % i for i in range(100)]


# -- argument checks ----------------------------------------------------------------------


def _calls(sock: socket.socket) -> dict[str, Callable[[asyncio.AbstractEventLoop], Any]]:
    address = ("127.0.0.1", 9)
    return {
        "sock_recv": lambda loop: loop.sock_recv(sock, 10),
        "sock_recv_into": lambda loop: loop.sock_recv_into(sock, bytearray(10)),
        "sock_recvfrom": lambda loop: loop.sock_recvfrom(sock, 10),
        "sock_recvfrom_into": lambda loop: loop.sock_recvfrom_into(sock, bytearray(10)),
        "sock_sendall": lambda loop: loop.sock_sendall(sock, b"x"),
        "sock_sendto": lambda loop: loop.sock_sendto(sock, b"x", address),
        "sock_connect": lambda loop: loop.sock_connect(sock, address),
        "sock_accept": lambda loop: loop.sock_accept(sock),
    }


_METHODS = sorted(_calls(socket.socket.__new__(socket.socket)))


@pytest.mark.parametrize("method", _METHODS)
def test_blocking_socket_in_debug_mode(any_loop: asyncio.AbstractEventLoop, method: str) -> None:
    any_loop.set_debug(True)
    with socket.socket() as sock:
        assert sock.gettimeout() is None
        with pytest.raises(ValueError, match=r"^the socket must be non-blocking$"):
            run(any_loop, _calls(sock)[method](any_loop))


@pytest.mark.parametrize("method", _METHODS)
def test_ssl_socket_is_refused(any_loop: asyncio.AbstractEventLoop, method: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with (
        context.wrap_socket(socket.socket(), server_hostname="example.org") as sock,
        pytest.raises(TypeError, match=r"^Socket cannot be of type SSLSocket$"),
    ):
        run(any_loop, _calls(sock)[method](any_loop))


@pytest.mark.parametrize("method", _METHODS)
def test_driver_without_socket_operations(method: str, clock_only_driver: Driver) -> None:
    loop = sansloop.EventLoop(driver=clock_only_driver)
    try:
        with _nonblocking(socket.socket()) as sock:
            coro = _calls(sock)[method](loop)
            with pytest.raises(NotImplementedError, match="driver has no socket operations"):
                loop.run_until_complete(coro)
    finally:
        loop.close()


# -- sansloop beyond asyncio ------------------------------------------------------------


def test_concurrent_recvs_on_one_socket_complete_in_order(
    loop: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # asyncio lets a second sock_recv replace the first one's reader, so the first never
    # completes; sansloop queues them and serves them in the order they were started.
    a, b = pair

    async def main() -> list[bytes]:
        receivers = [asyncio.ensure_future(loop.sock_recv(a, 1)) for _ in range(5)]
        await asyncio.sleep(0.01)
        await loop.sock_sendall(b, b"abcde")
        return await asyncio.gather(*receivers)

    assert run(loop, main()) == [b"a", b"b", b"c", b"d", b"e"]


def test_sendall_counts_bytes_not_items(
    loop: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # asyncio compares the bytes sent with len(data), which counts items: for an
    # array('i') it stops after a quarter of the data once the first send was partial.
    a, b = pair
    raw = os.urandom(4 << 20)
    data = array.array("i", raw)

    async def main() -> bytes:
        reading = asyncio.ensure_future(_read_exactly(loop, a, len(raw)))
        await loop.sock_sendall(b, data)
        return await reading

    assert run(loop, main()) == raw


def test_concurrent_sendalls_do_not_interleave(
    loop: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    size = 2 << 20
    blocks = [bytes([i]) * size for i in range(3)]

    async def main() -> bytes:
        sending = [asyncio.ensure_future(loop.sock_sendall(b, block)) for block in blocks]
        received = await _read_exactly(loop, a, 3 * size)
        await asyncio.gather(*sending)
        return received

    assert run(loop, main()) == b"".join(blocks)


# -- no leaks -----------------------------------------------------------------------------


def test_no_descriptor_leaks(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], fd_count: Callable[[], int]
) -> None:
    before = fd_count()
    loop = loop_factory()
    try:

        async def main() -> None:
            async with _connected(loop) as (client, conn):
                await loop.sock_sendall(client, b"x" * 100_000)
                assert len(await _read_exactly(loop, conn, 100_000)) == 100_000
                pending = asyncio.ensure_future(loop.sock_recv(client, 1))
                await asyncio.sleep(0.01)
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
            with _listener() as srv:
                address = srv.getsockname()
            with (
                _nonblocking(socket.socket()) as refused,
                contextlib.suppress(ConnectionRefusedError),
            ):
                await loop.sock_connect(refused, address)

        run(loop, main())
    finally:
        loop.close()
    assert fd_count() == before


@pytest.mark.skipif(sys.platform == "win32", reason="a Unix test")
def test_accepted_sockets_are_closed_with_their_owner(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    before = fd_count()

    async def main() -> None:
        for _ in range(20):
            async with _connected(any_loop) as (client, conn):
                await any_loop.sock_sendall(client, b"x")
                assert await any_loop.sock_recv(conn, 1) == b"x"

    run(any_loop, main())
    assert fd_count() == before


def test_connect_again_right_after_a_cancelled_connect(any_loop: asyncio.AbstractEventLoop) -> None:
    """A new sock_connect must really call connect(), not inherit the cancelled attempt's fate."""

    async def main() -> list[OSError]:
        refusals: list[OSError] = []
        with socket.socket() as listener, _nonblocking(socket.socket()) as sock:
            listener.bind(("127.0.0.1", 0))
            address = listener.getsockname()
            first = any_loop.create_task(any_loop.sock_connect(sock, address))
            await asyncio.sleep(0)
            first.cancel()
            listener.listen(1)
            for _ in range(128):
                try:
                    await any_loop.sock_connect(sock, address)
                except ConnectionRefusedError as exc:
                    refusals.append(exc)  # the cancelled attempt was refused: try again
                else:
                    return refusals
            raise AssertionError(f"never connected; refused {len(refusals)} times")

    refusals = run(any_loop, main())
    assert len(refusals) < 128
