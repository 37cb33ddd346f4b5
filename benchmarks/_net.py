"""The networking workloads: TCP, Unix and UDP over loopback, each checking every byte.

Like the scheduling workloads, ``run(loop, size)`` returns the seconds the loop spent on the
traffic itself: the server is started and the clients connected before the clock starts, and
everything is closed after it stops.  A wrong echo raises :class:`WorkloadError`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import zlib
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from ._workloads import Workload, WorkloadError

__all__ = ["net_workloads"]

#: One message of the echo workloads.
_MESSAGE = bytes(range(100))
#: Messages a pipelined client sends before it waits for their echo.
_BURST = 32


def _timed(loop: asyncio.AbstractEventLoop, setup: Callable[[], Awaitable[Any]]) -> float:
    """Run ``setup()`` (which returns the timed coroutine function and a teardown)."""

    async def main() -> float:
        work, teardown = await setup()
        try:
            start = perf_counter()
            await work()
            return perf_counter() - start
        finally:
            await teardown()

    return loop.run_until_complete(main())


# -- streams API: request/response ---------------------------------------------------------


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def _streams_echo(
    clients: int, unix: bool = False
) -> Callable[[asyncio.AbstractEventLoop, int], float]:
    def run(loop: asyncio.AbstractEventLoop, n: int) -> float:
        per_client = n // clients
        tmp = tempfile.TemporaryDirectory() if unix else None

        async def setup() -> Any:
            if tmp is not None:
                path = os.path.join(tmp.name, "echo.sock")
                server = await asyncio.start_unix_server(_echo_handler, path)
                pairs = [await asyncio.open_unix_connection(path) for _ in range(clients)]
            else:
                server = await asyncio.start_server(_echo_handler, "127.0.0.1", 0)
                address = server.sockets[0].getsockname()
                pairs = [await asyncio.open_connection(*address) for _ in range(clients)]

            async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                for _ in range(per_client):
                    writer.write(_MESSAGE)
                    await writer.drain()
                    if await reader.readexactly(len(_MESSAGE)) != _MESSAGE:
                        raise WorkloadError("the echo differs from the message")

            async def work() -> None:
                await asyncio.gather(*(client(r, w) for r, w in pairs))

            async def teardown() -> None:
                for _, writer in pairs:
                    writer.close()
                    await writer.wait_closed()
                server.close()
                await server.wait_closed()
                if tmp is not None:
                    tmp.cleanup()

            return work, teardown

        return _timed(loop, setup)

    return run


# -- protocol API: pipelined ---------------------------------------------------------------


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _PipelinedClient(asyncio.Protocol):
    """Sends bursts of messages; checks each burst's echo before sending the next."""

    def __init__(self, messages: int) -> None:
        self.left = messages
        self.expected = b""
        self.received = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def send_burst(self) -> None:
        count = min(_BURST, self.left)
        self.left -= count
        self.expected = _MESSAGE * count
        for _ in range(count):
            self.transport.write(_MESSAGE)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) < len(self.expected):
            return
        if self.received != self.expected:
            self.done.set_exception(WorkloadError("the echo differs from the burst"))
            return
        self.received.clear()
        if self.left:
            self.send_burst()
        elif not self.done.done():
            self.done.set_result(None)


def _protocol_echo(clients: int) -> Callable[[asyncio.AbstractEventLoop, int], float]:
    def run(loop: asyncio.AbstractEventLoop, n: int) -> float:
        async def setup() -> Any:
            server = await loop.create_server(_EchoProtocol, "127.0.0.1", 0)
            address = server.sockets[0].getsockname()
            protocols: list[_PipelinedClient] = []
            for _ in range(clients):
                _, protocol = await loop.create_connection(
                    lambda: _PipelinedClient(n // clients), *address
                )
                protocols.append(protocol)

            async def work() -> None:
                for protocol in protocols:
                    protocol.send_burst()
                await asyncio.gather(*(p.done for p in protocols))

            async def teardown() -> None:
                for protocol in protocols:
                    protocol.transport.close()
                server.close()
                await asyncio.sleep(0)

            return work, teardown

        return _timed(loop, setup)

    return run


# -- bulk throughput -----------------------------------------------------------------------

_BLOCK = bytes(os.urandom(64 * 1024))


class _Sink(asyncio.Protocol):
    """Counts and checksums everything it receives until EOF."""

    def __init__(self) -> None:
        self.size = 0
        self.checksum = 1
        self.done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        self.checksum = zlib.adler32(data, self.checksum)

    def eof_received(self) -> None:
        self.done.set_result((self.size, self.checksum))


class _Source(asyncio.Protocol):
    """Writes ``blocks`` blocks as fast as flow control lets it, then EOF."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def pump(self) -> None:
        while self.blocks and not self.paused:
            self.blocks -= 1
            self.transport.write(_BLOCK)
        if not self.blocks:
            self.transport.write_eof()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()


def tcp_bulk(loop: asyncio.AbstractEventLoop, mib: int) -> float:
    """``mib`` MiB one way through one connection, with flow control; checksummed."""
    blocks = mib * 1024 * 1024 // len(_BLOCK)
    expected_size = blocks * len(_BLOCK)
    expected_checksum = _stream_checksum(blocks)

    async def setup() -> Any:
        sinks: list[_Sink] = []

        def make_sink() -> _Sink:
            sinks.append(_Sink())
            return sinks[-1]

        server = await loop.create_server(make_sink, "127.0.0.1", 0)
        transport, source = await loop.create_connection(
            lambda: _Source(blocks), *server.sockets[0].getsockname()
        )
        while not sinks:
            await asyncio.sleep(0)

        async def work() -> None:
            source.pump()
            size, checksum = await sinks[0].done
            if size != expected_size:
                raise WorkloadError(f"received {size} bytes, sent {expected_size}")
            if checksum != expected_checksum:
                raise WorkloadError("the received bytes differ from the sent ones")

        async def teardown() -> None:
            transport.close()
            server.close()
            await asyncio.sleep(0)

        return work, teardown

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


# -- UDP -----------------------------------------------------------------------------------


class _UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self, n: int) -> None:
        self.left = n
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data != _MESSAGE:
            self.done.set_exception(WorkloadError("the datagram echo differs"))
            return
        self.left -= 1
        if self.left:
            self.transport.sendto(_MESSAGE)
        elif not self.done.done():
            self.done.set_result(None)


def udp_echo(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``n`` datagram round trips between two endpoints."""

    async def setup() -> Any:
        server, _ = await loop.create_datagram_endpoint(_UDPEcho, local_addr=("127.0.0.1", 0))
        client, protocol = await loop.create_datagram_endpoint(
            lambda: _UDPClient(n), remote_addr=server.get_extra_info("sockname")
        )

        async def work() -> None:
            client.sendto(_MESSAGE)
            await protocol.done

        async def teardown() -> None:
            client.close()
            server.close()
            await asyncio.sleep(0)

        return work, teardown

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
        ),
        Workload(
            "tcp_echo_streams_10",
            "streams API echo of 100-byte messages, 10 clients at once",
            _streams_echo(10),
            20_000,
            500,
        ),
        Workload(
            "tcp_echo_protocol_1",
            f"Protocol echo, bursts of {_BURST} pipelined messages, 1 client",
            _protocol_echo(1),
            100_000,
            2_000,
        ),
        Workload(
            "tcp_echo_protocol_10",
            f"Protocol echo, bursts of {_BURST} pipelined messages, 10 clients",
            _protocol_echo(10),
            200_000,
            4_000,
        ),
        Workload(
            "tcp_bulk",
            "MiB through one TCP connection with flow control, checksummed",
            tcp_bulk,
            512,
            16,
        ),
        Workload("udp_echo", "UDP round trips of 100-byte datagrams", udp_echo, 10_000, 300),
    ]
    if hasattr(socket, "AF_UNIX"):
        rows.append(
            Workload(
                "unix_echo_streams",
                "streams API echo of 100-byte messages over a Unix socket, 1 client",
                _streams_echo(1, unix=True),
                10_000,
                300,
            )
        )
    return tuple(rows)
