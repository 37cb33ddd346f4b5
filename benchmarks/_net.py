"""The networking workloads: TCP, Unix and UDP over loopback, each checking every byte.

Like the scheduling workloads, ``run(loop, size)`` returns the seconds the loop spent on the
traffic itself: the server is started and the clients connected before the clock starts, and
everything is closed (and its ``connection_lost`` awaited, so no socket outlives the loop)
after it stops.  A wrong echo raises :class:`WorkloadError`; so does a run that makes no
progress for :data:`_PATIENCE` seconds, rather than hanging the whole suite.

Messages differ from one another (a counter in the first bytes), so an echo that is
duplicated, dropped or reordered is caught, not only one that is corrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import zlib
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from ._workloads import Workload, WorkloadError

__all__ = ["net_workloads"]

#: Give up on a run (and fail it) after this many seconds.
_PATIENCE = 60.0
#: Bytes in one message of the echo workloads.
_MESSAGE_SIZE = 100
#: Distinct messages, cycled through: message ``i`` is ``_MESSAGES[i % len(_MESSAGES)]``.
_MESSAGES = tuple(
    i.to_bytes(4, "big") + bytes((i + j) % 256 for j in range(_MESSAGE_SIZE - 4))
    for i in range(256)
)
#: Messages a pipelined client sends before it waits for their echo.
_BURST = 32
#: What one burst's echo must be, byte for byte.
_BURST_BYTES = b"".join(_MESSAGES[:_BURST])

Setup = Callable[[contextlib.AsyncExitStack], Awaitable[Callable[[], Awaitable[None]]]]


def _timed(loop: asyncio.AbstractEventLoop, setup: Setup) -> float:
    """Time the coroutine ``setup`` returns; what it opened is closed through the exit stack.

    ``setup`` registers a clean-up for each thing as soon as it has it, so a set-up that fails
    half-way (a contender without UDP, say) still closes what it opened.
    """

    async def main() -> float:
        async with contextlib.AsyncExitStack() as stack:
            work = await setup(stack)
            start = perf_counter()
            try:
                await asyncio.wait_for(work(), _PATIENCE)
            except TimeoutError:
                raise WorkloadError(f"no result after {_PATIENCE} s") from None
            return perf_counter() - start

    async def watched() -> float:
        # A second watchdog over set-up and tear-down too: a close that never completes
        # must fail the run, not hang the suite.
        try:
            return await asyncio.wait_for(main(), 3 * _PATIENCE)
        except TimeoutError:
            raise WorkloadError(f"set-up or tear-down stuck for {3 * _PATIENCE} s") from None

    return loop.run_until_complete(watched())


async def _settle(lost: list[asyncio.Future[None]]) -> None:
    """Wait until every connection has really gone (``connection_lost`` has run)."""
    if lost:
        await asyncio.wait_for(asyncio.gather(*lost, return_exceptions=True), _PATIENCE)


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _resolve(fut: asyncio.Future[None], exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


async def _close_server(server: asyncio.AbstractServer) -> None:
    server.close()
    await server.wait_closed()


# -- streams API: request/response ---------------------------------------------------------


def _streams_echo(
    clients: int, unix: bool = False, tls: bool = False
) -> Callable[[asyncio.AbstractEventLoop, int], float]:
    """``n`` request/response round trips through StreamReader/StreamWriter, over ``clients``
    (over TLS if ``tls``)."""

    def run(loop: asyncio.AbstractEventLoop, n: int) -> float:
        server_ssl, client_ssl = _tls_contexts() if tls else (None, None)
        hostname = "localhost" if tls else None
        per_client = n // clients
        handlers: list[asyncio.Future[None]] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            gone = _new_future()
            handlers.append(gone)
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                _resolve(gone)

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for i in range(per_client):
                message = _MESSAGES[i % len(_MESSAGES)]
                writer.write(message)
                await writer.drain()
                if await reader.readexactly(_MESSAGE_SIZE) != message:
                    raise WorkloadError(f"the echo of message {i} differs from it")

        async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
            # The stack unwinds last-in first-out: the clients close, the server's handlers
            # finish, the server closes, and then the socket's directory goes.
            pairs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
            if unix:
                path = os.path.join(stack.enter_context(tempfile.TemporaryDirectory()), "echo")
                server = await asyncio.start_unix_server(handle, path, ssl=server_ssl)
            else:
                server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ssl)
            stack.push_async_callback(_close_server, server)
            stack.push_async_callback(_settle, handlers)
            stack.push_async_callback(_close_writers, pairs)
            for _ in range(clients):
                if unix:
                    pairs.append(
                        await asyncio.open_unix_connection(
                            path, ssl=client_ssl, server_hostname=hostname
                        )
                    )
                else:
                    pairs.append(
                        await asyncio.open_connection(
                            *server.sockets[0].getsockname(),
                            ssl=client_ssl,
                            server_hostname=hostname,
                        )
                    )

            async def work() -> None:
                await asyncio.gather(*(client(r, w) for r, w in pairs))

            return work

        return _timed(loop, setup)

    return run


async def _close_writers(pairs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in pairs:
        writer.close()
    for _, writer in pairs:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# -- protocol API: pipelined ---------------------------------------------------------------


class _Tracked(asyncio.BaseProtocol):
    """A protocol that remembers its transport and says when the connection is gone."""

    transport: Any

    def __init__(self) -> None:
        self.lost = _new_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        _resolve(self.lost)


class _EchoProtocol(_Tracked, asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _PipelinedClient(_Tracked, asyncio.Protocol):
    """Writes bursts of messages without waiting; checks each burst's echo, then sends the next."""

    def __init__(self, messages: int) -> None:
        super().__init__()
        self.left = messages
        self.expected = b""
        self.received = bytearray()
        self.done = _new_future()

    def send_burst(self) -> None:
        count = min(_BURST, self.left)
        self.left -= count
        self.expected = _BURST_BYTES if count == _BURST else b"".join(_MESSAGES[:count])
        write = self.transport.write
        for message in _MESSAGES[:count]:
            write(message)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) < len(self.expected):
            return
        if self.received != self.expected:
            _resolve(self.done, WorkloadError("the echo differs from the burst"))
            return
        self.received.clear()
        if self.left:
            self.send_burst()
        else:
            _resolve(self.done)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _resolve(self.done, WorkloadError(f"connection lost with {self.left} messages to go"))


def _protocol_echo(clients: int) -> Callable[[asyncio.AbstractEventLoop, int], float]:
    """``n`` messages echoed by ``data_received``, pipelined in bursts, over ``clients``."""

    def run(loop: asyncio.AbstractEventLoop, n: int) -> float:
        async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
            peers: list[_Tracked] = []

            def serve() -> _EchoProtocol:
                protocol = _EchoProtocol()
                peers.append(protocol)
                return protocol

            server = await loop.create_server(serve, "127.0.0.1", 0)
            # Unwound last-in first-out: the connections go before the server, whose
            # wait_closed() (3.12.1+) waits for them.
            stack.push_async_callback(_close_server, server)
            stack.push_async_callback(_close_all, peers)
            address = server.sockets[0].getsockname()
            protocols: list[_PipelinedClient] = []
            for _ in range(clients):
                _, protocol = await loop.create_connection(
                    lambda: _PipelinedClient(n // clients), *address
                )
                protocols.append(protocol)
                peers.append(protocol)

            async def work() -> None:
                for protocol in protocols:
                    protocol.send_burst()
                await asyncio.gather(*(p.done for p in protocols))

            return work

        return _timed(loop, setup)

    return run


async def _close_all(peers: list[_Tracked]) -> None:
    for peer in peers:
        peer.transport.close()
    await _settle([peer.lost for peer in peers])


# -- bulk throughput -----------------------------------------------------------------------

_BLOCK = bytes(os.urandom(64 * 1024))


class _Sink(_Tracked, asyncio.Protocol):
    """Counts and checksums everything it receives until EOF."""

    def __init__(self, expected: int | None = None) -> None:
        super().__init__()
        self.size = 0
        self.checksum = 1
        self.expected = expected  # Done at this size (TLS has no EOF of its own to send).
        self.done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        self.checksum = zlib.adler32(data, self.checksum)
        if self.size == self.expected and not self.done.done():
            self.done.set_result((self.size, self.checksum))

    def eof_received(self) -> None:
        if not self.done.done():
            self.done.set_result((self.size, self.checksum))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.done.done():
            self.done.set_exception(WorkloadError(f"connection lost after {self.size} bytes"))


class _Source(_Tracked, asyncio.Protocol):
    """Writes ``blocks`` blocks as fast as flow control lets it, then EOF."""

    def __init__(self, blocks: int, eof: bool = True) -> None:
        super().__init__()
        self.blocks = blocks
        self.paused = False
        self.eof = eof

    def pump(self) -> None:
        write = self.transport.write
        while self.blocks and not self.paused:
            self.blocks -= 1
            write(_BLOCK)
        if not self.blocks and self.eof:
            self.transport.write_eof()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()


def tcp_bulk(loop: asyncio.AbstractEventLoop, mib: int, tls: bool = False) -> float:
    """``mib`` MiB one way through one connection, with flow control; length and adler32."""
    blocks = mib * 1024 * 1024 // len(_BLOCK)
    expected_size = blocks * len(_BLOCK)
    expected_checksum = _stream_checksum(blocks)
    server_ssl, client_ssl = _tls_contexts() if tls else (None, None)

    async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
        peers: list[_Tracked] = []
        sinks: list[_Sink] = []

        def make_sink() -> _Sink:
            sinks.append(_Sink(expected_size if tls else None))
            peers.append(sinks[-1])
            return sinks[-1]

        server = await loop.create_server(make_sink, "127.0.0.1", 0, ssl=server_ssl)
        stack.push_async_callback(_close_server, server)  # after the connections (LIFO)
        stack.push_async_callback(_close_all, peers)
        _, source = await loop.create_connection(
            lambda: _Source(blocks, eof=not tls),
            *server.sockets[0].getsockname(),
            ssl=client_ssl,
            server_hostname="localhost" if tls else None,
        )
        peers.append(source)
        while not sinks or getattr(sinks[0], "transport", None) is None:
            await asyncio.sleep(0)

        async def work() -> None:
            source.pump()
            size, checksum = await sinks[0].done
            if size != expected_size:
                raise WorkloadError(f"received {size} bytes, sent {expected_size}")
            if checksum != expected_checksum:
                raise WorkloadError("the received bytes differ from the sent ones")

        return work

    return _timed(loop, setup)


_CHECKSUMS: dict[int, int] = {}


def _stream_checksum(blocks: int) -> int:
    """adler32 of ``blocks`` copies of the block (computed once per size, then cached)."""
    if blocks not in _CHECKSUMS:
        checksum = 1
        for _ in range(blocks):
            checksum = zlib.adler32(_BLOCK, checksum)
        _CHECKSUMS[blocks] = checksum
    return _CHECKSUMS[blocks]


def tls_bulk(loop: asyncio.AbstractEventLoop, mib: int) -> float:
    """:func:`tcp_bulk` over TLS."""
    return tcp_bulk(loop, mib, tls=True)


_CONTEXTS: list[tuple[Any, Any]] = []


def _tls_contexts() -> tuple[Any, Any]:
    """A server and a client ``SSLContext`` for ``localhost``, from a test CA (made once)."""
    if not _CONTEXTS:
        import ssl

        import trustme

        ca = trustme.CA()
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(server)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        _CONTEXTS.append((server, client))
    return _CONTEXTS[0]


# -- UDP -----------------------------------------------------------------------------------


class _UDPEcho(_Tracked, asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _UDPClient(_Tracked, asyncio.DatagramProtocol):
    """Sends datagram ``i`` once datagram ``i - 1`` has come back, ``n`` in all."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.sent = 0
        self.done = _new_future()

    def send_next(self) -> None:
        self.transport.sendto(_MESSAGES[self.sent % len(_MESSAGES)])
        self.sent += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data != _MESSAGES[(self.sent - 1) % len(_MESSAGES)]:
            _resolve(self.done, WorkloadError(f"the echo of datagram {self.sent - 1} differs"))
        elif self.sent < self.n:
            self.send_next()
        else:
            _resolve(self.done)

    def error_received(self, exc: Exception) -> None:
        _resolve(self.done, WorkloadError(f"error_received({exc!r})"))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _resolve(self.done, WorkloadError(f"endpoint closed after {self.sent} datagrams"))


def udp_echo(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``n`` datagram round trips between two endpoints, one datagram in flight at a time.

    Loopback does not drop a lone datagram; if one is ever lost, the run fails on the
    watchdog instead of hanging.
    """

    async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
        peers: list[_Tracked] = []
        stack.push_async_callback(_close_all, peers)
        _, server = await loop.create_datagram_endpoint(_UDPEcho, local_addr=("127.0.0.1", 0))
        peers.append(server)
        _, client = await loop.create_datagram_endpoint(
            lambda: _UDPClient(n), remote_addr=server.transport.get_extra_info("sockname")
        )
        peers.append(client)

        async def work() -> None:
            client.send_next()
            await client.done

        return work

    return _timed(loop, setup)


def net_workloads() -> tuple[Workload, ...]:
    """The networking workloads this machine can run (Unix sockets where they exist)."""
    rows = [
        Workload(
            "tcp_echo_streams_1",
            "streams API echo of 100-byte messages, 1 client",
            _streams_echo(1),
            10_000,
            300,
            "net",
        ),
        Workload(
            "tcp_echo_streams_10",
            "streams API echo of 100-byte messages, 10 clients at once",
            _streams_echo(10),
            20_000,
            500,
            "net",
        ),
        Workload(
            "tcp_echo_protocol_1",
            f"Protocol echo, bursts of {_BURST} pipelined 100-byte messages, 1 client",
            _protocol_echo(1),
            100_000,
            2_000,
            "net",
        ),
        Workload(
            "tcp_echo_protocol_10",
            f"Protocol echo, bursts of {_BURST} pipelined 100-byte messages, 10 clients",
            _protocol_echo(10),
            100_000,
            2_000,
            "net",
        ),
        Workload(
            "tcp_bulk",
            "MiB through one TCP connection with flow control, length and adler32 checked",
            tcp_bulk,
            512,
            16,
            "net",
        ),
        Workload(
            "udp_echo",
            "UDP round trips of 100-byte datagrams",
            udp_echo,
            10_000,
            300,
            "net",
        ),
    ]
    try:
        import trustme  # noqa: F401 - the TLS workloads make their certificates with it
    except ImportError:
        pass
    else:
        rows += [
            Workload(
                "tls_echo_streams_1",
                "streams API echo of 100-byte messages over TLS, 1 client",
                _streams_echo(1, tls=True),
                10_000,
                300,
                "net",
            ),
            Workload(
                "tls_bulk",
                "MiB through one TLS connection with flow control, length and adler32 checked",
                tls_bulk,
                256,
                8,
                "net",
            ),
        ]
    if hasattr(socket, "AF_UNIX"):
        rows.append(
            Workload(
                "unix_echo_streams",
                "streams API echo of 100-byte messages over a Unix socket, 1 client",
                _streams_echo(1, unix=True),
                10_000,
                300,
                "net",
            )
        )
    return tuple(rows)
