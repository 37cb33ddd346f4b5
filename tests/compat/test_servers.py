"""Servers and connections through the public API: ``create_server``, ``create_unix_server``,
``Server``, ``create_connection`` and friends, including their argument errors.

Each test runs on sansloop and on asyncio's ``SelectorEventLoop`` with the same assertions;
argument errors are compared message for message.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from _net import HAS_IPV6, HAS_UNIX, run

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak")

_T = TypeVar("_T")


needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
needs_unix = pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Peer(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


class Peers:
    """A protocol factory that remembers what it made."""

    def __init__(self) -> None:
        self.made: list[Peer] = []

    def __call__(self) -> Peer:
        self.made.append(Peer())
        return self.made[-1]

    async def wait_for(self, n: int) -> None:
        while len(self.made) < n or any(p.transport is None for p in self.made):
            await asyncio.sleep(0.001)


# -- Server -------------------------------------------------------------------------------


def test_server_lifecycle(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await any_loop.create_server(Peers(), "127.0.0.1", 0, start_serving=False)
        assert server.get_loop() is any_loop
        assert not server.is_serving()
        (sock,) = server.sockets
        assert sock.family == socket.AF_INET
        address = sock.getsockname()
        assert address[0] == "127.0.0.1"
        await server.start_serving()
        assert server.is_serving()
        await server.start_serving()  # Twice is fine.
        writer: asyncio.StreamWriter | None = None
        _, writer = await asyncio.open_connection(*address)
        writer.close()
        await writer.wait_closed()
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        server.close()  # Twice is fine.
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*address)
        assert "sockets=()" in repr(server)

    run(any_loop, main())


def test_server_async_with_and_serve_forever(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handler, "127.0.0.1", 0, start_serving=False)
        async with server:
            serving = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="is already being awaited on serve_forever"):
                await server.serve_forever()
            assert server.is_serving()
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            writer.write(b"echo\n")
            assert await reader.read() == b"echo\n"
            writer.close()
            await writer.wait_closed()
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
            assert not server.is_serving()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(any_loop, main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11's wait_closed returns at once")
def test_wait_closed_waits_for_the_last_client(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        peers = Peers()
        server = await any_loop.create_server(peers, "127.0.0.1", 0)
        _transport, client = await any_loop.create_connection(
            Peer, *server.sockets[0].getsockname()
        )
        await peers.wait_for(1)
        server.close()
        waiting = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # A client is still connected.
        assert peers.made[0].transport is not None
        peers.made[0].transport.close()
        await waiting
        await client.lost

    run(any_loop, main())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 behaviour")
def test_wait_closed_on_311_returns_at_once_when_closed(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> None:
        peers = Peers()
        server = await any_loop.create_server(peers, "127.0.0.1", 0)
        transport, client = await any_loop.create_connection(Peer, *server.sockets[0].getsockname())
        await peers.wait_for(1)
        server.close()
        await server.wait_closed()  # Returns although a client is connected (3.11's rule).
        assert peers.made[0].transport is not None
        assert not peers.made[0].transport.is_closing()
        transport.close()
        await client.lost
        await peers.made[0].lost

    run(any_loop, main())


@pytest.mark.skipif(sys.version_info < (3, 13), reason="close_clients/abort_clients are 3.13+")
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_close_and_abort_clients(any_loop: asyncio.AbstractEventLoop, how: str) -> None:
    async def main() -> None:
        peers = Peers()
        server = await any_loop.create_server(peers, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        clients = [await any_loop.create_connection(Peer, *address) for _ in range(3)]
        await peers.wait_for(3)
        server.close()
        getattr(server, how)()
        await server.wait_closed()
        for peer in peers.made:
            assert await peer.lost is None
        for _, client in clients:
            exc = await client.lost
            assert exc is None or isinstance(exc, ConnectionResetError)

    run(any_loop, main())


@needs_ipv6
def test_server_on_several_hosts(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        port = _free_port()
        server = await any_loop.create_server(Peers(), ["127.0.0.1", "::1", "127.0.0.1"], port)
        families = sorted(sock.family for sock in server.sockets)
        assert families == sorted([socket.AF_INET, socket.AF_INET6])
        v6 = next(s for s in server.sockets if s.family == socket.AF_INET6)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        for host in ("127.0.0.1", "::1"):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(any_loop, main())


def test_server_socket_options(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await any_loop.create_server(Peers(), "127.0.0.1", 0, reuse_port=True)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        # A second server may share the port (SO_REUSEPORT).
        other = await any_loop.create_server(
            Peers(), "127.0.0.1", sock.getsockname()[1], reuse_port=True
        )
        other.close()
        server.close()
        await server.wait_closed()
        await other.wait_closed()

    run(any_loop, main())


def test_server_from_a_socket(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = await any_loop.create_server(Peers(), sock=sock)
        assert server.sockets[0].fileno() == sock.fileno()
        _, writer = await asyncio.open_connection(*sock.getsockname())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        assert sock.fileno() == -1  # The server closed it.

    run(any_loop, main())


def test_address_in_use(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await any_loop.create_server(Peers(), "127.0.0.1", 0, reuse_address=False)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(OSError, match="error while attempting to bind on address") as info:
            await any_loop.create_server(Peers(), "127.0.0.1", port, reuse_address=False)
        assert info.value.errno == errno.EADDRINUSE
        server.close()
        await server.wait_closed()

    run(any_loop, main())


# -- Unix servers -------------------------------------------------------------------------


@needs_unix
def test_unix_server_replaces_a_stale_socket(any_loop: asyncio.AbstractEventLoop) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()  # The file stays behind.
        assert os.path.exists(path)

        async def main() -> None:
            server = await any_loop.create_unix_server(Peers(), path)
            assert server.sockets[0].getsockname() == path
            _, writer = await asyncio.open_unix_connection(path)
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        run(any_loop, main())
        # 3.13 removes the socket file on close; earlier versions leave it.
        assert os.path.exists(path) == (sys.version_info < (3, 13))


@needs_unix
@pytest.mark.skipif(sys.version_info < (3, 13), reason="cleanup_socket is 3.13+")
def test_unix_server_cleanup_socket_false_keeps_the_file(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")

        async def main() -> None:
            server = await any_loop.create_unix_server(Peers(), path, cleanup_socket=False)
            server.close()
            await server.wait_closed()

        run(any_loop, main())
        assert os.path.exists(path)


@needs_unix
def test_unix_connection_to_nothing(any_loop: asyncio.AbstractEventLoop) -> None:
    with tempfile.TemporaryDirectory() as tmp:

        async def main() -> None:
            with pytest.raises(FileNotFoundError):
                await any_loop.create_unix_connection(Peer, os.path.join(tmp, "nothing"))

        run(any_loop, main())


# -- connecting ---------------------------------------------------------------------------


@needs_ipv6
def test_happy_eyeballs_falls_back_to_the_family_that_answers(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> None:
        server = await any_loop.create_server(Peers(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def fake_getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]

        any_loop.getaddrinfo = fake_getaddrinfo  # type: ignore[method-assign]
        transport, client = await any_loop.create_connection(
            Peer, "localhost", port, happy_eyeballs_delay=0.05
        )
        assert transport.get_extra_info("peername") == ("127.0.0.1", port)
        transport.close()
        await client.lost
        server.close()
        await server.wait_closed()

    run(any_loop, main())


def test_local_addr_is_bound(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        peers = Peers()
        server = await any_loop.create_server(peers, "127.0.0.1", 0)
        local_port = _free_port()
        transport, client = await any_loop.create_connection(
            Peer, *server.sockets[0].getsockname(), local_addr=("127.0.0.1", local_port)
        )
        assert transport.get_extra_info("sockname") == ("127.0.0.1", local_port)
        await peers.wait_for(1)
        transport.close()
        await client.lost
        peers.made[0].transport.close()  # type: ignore[union-attr]
        await peers.made[0].lost
        server.close()
        await server.wait_closed()

    run(any_loop, main())


def test_several_failures_are_combined(any_loop: asyncio.AbstractEventLoop) -> None:
    refused = _free_port()

    async def main() -> None:
        async def fake_getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", refused)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", refused)),
            ]

        any_loop.getaddrinfo = fake_getaddrinfo  # type: ignore[method-assign]
        with pytest.raises(OSError, match=r"^Multiple exceptions: .*127\.0\.0\.1.*127\.0\.0\.2"):
            await any_loop.create_connection(Peer, "example.invalid", refused)
        if sys.version_info >= (3, 12):
            with pytest.raises(ExceptionGroup) as info:
                await any_loop.create_connection(Peer, "example.invalid", refused, all_errors=True)
            assert info.value.message == "create_connection failed"
            assert len(info.value.exceptions) == 2
            assert all(isinstance(e, ConnectionRefusedError) for e in info.value.exceptions)

    run(any_loop, main())


# -- bad arguments: the same exception and message as asyncio ------------------------------


def _udp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


_BAD_CALLS: dict[str, Callable[[asyncio.AbstractEventLoop, list[socket.socket]], Any]] = {
    "connection: host and sock": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, sock=socks[0]
    ),
    "connection: nothing": lambda loop, socks: loop.create_connection(asyncio.Protocol),
    "connection: datagram sock": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, sock=socks[1]
    ),
    "connection: server_hostname without ssl": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, server_hostname="x"
    ),
    "connection: handshake timeout without ssl": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1
    ),
    "connection: shutdown timeout without ssl": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, ssl_shutdown_timeout=1
    ),
    "connection: ssl without host": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, sock=socks[0], ssl=True
    ),
    "connection: bad port": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", "no-such-service"
    ),
    "connection: bad family": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, family=socket.AF_UNIX
    ),
    "connection: bad local_addr": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, local_addr=("192.0.2.1", 0)
    ),
    "connection: unknown host": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "host.invalid", 80
    ),
    "connection: malformed address": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "::zz", 80
    ),
    "connection: null in host": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "a\x00b", 80
    ),
    "connection: negative port": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", -1
    ),
    "connection: port too large": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 70000
    ),
    "connection: port of a wrong type": lambda loop, socks: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", [1]
    ),
    "server: unknown family": lambda loop, socks: loop.create_server(
        asyncio.Protocol, "127.0.0.1", 0, family=999
    ),
    "server: ssl=True": lambda loop, socks: loop.create_server(
        asyncio.Protocol, "127.0.0.1", 0, ssl=True
    ),
    "server: host and sock": lambda loop, socks: loop.create_server(
        asyncio.Protocol, "127.0.0.1", 0, sock=socks[0]
    ),
    "server: nothing": lambda loop, socks: loop.create_server(asyncio.Protocol),
    "server: datagram sock": lambda loop, socks: loop.create_server(
        asyncio.Protocol, sock=socks[1]
    ),
    "server: handshake timeout without ssl": lambda loop, socks: loop.create_server(
        asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1
    ),
    "unix connection: path and sock": lambda loop, socks: loop.create_unix_connection(
        asyncio.Protocol, "/nonexistent", sock=socks[0]
    ),
    "unix connection: nothing": lambda loop, socks: loop.create_unix_connection(asyncio.Protocol),
    "unix connection: tcp sock": lambda loop, socks: loop.create_unix_connection(
        asyncio.Protocol, sock=socks[0]
    ),
    "unix connection: ssl without server_hostname": lambda loop, socks: loop.create_unix_connection(
        asyncio.Protocol, "/nonexistent", ssl=True
    ),
    "unix server: nothing": lambda loop, socks: loop.create_unix_server(asyncio.Protocol),
    "unix server: tcp sock": lambda loop, socks: loop.create_unix_server(
        asyncio.Protocol, sock=socks[0]
    ),
    "unix server: ssl=True": lambda loop, socks: loop.create_unix_server(
        asyncio.Protocol, "/nonexistent", ssl=True
    ),
    "accepted: datagram sock": lambda loop, socks: loop.connect_accepted_socket(
        asyncio.Protocol, socks[1]
    ),
    "accepted: handshake timeout without ssl": lambda loop, socks: loop.connect_accepted_socket(
        asyncio.Protocol, socks[0], ssl_handshake_timeout=1
    ),
}


def _failure(loop: asyncio.AbstractEventLoop, name: str) -> tuple[type[BaseException], str]:
    with socket.socket() as tcp, _udp_socket() as udp:
        try:
            run(loop, _BAD_CALLS[name](loop, [tcp, udp]))
        except BaseException as exc:
            # The socket's repr holds its descriptor number, the same on both loops.
            return type(exc), str(exc)
    raise AssertionError(f"{name}: no error")


@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_bad_arguments_fail_as_in_asyncio(name: str) -> None:
    reference = asyncio.SelectorEventLoop()
    try:
        expected = _failure(reference, name)
    finally:
        reference.close()
    loop = sansloop.EventLoop()
    try:
        got = _failure(loop, name)
    finally:
        loop.close()
    assert got == expected


def test_closed_loop_refuses_servers() -> None:
    loop = sansloop.EventLoop()
    loop.close()
    coro = loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro.send(None)
    coro.close()
