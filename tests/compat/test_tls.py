"""TLS over real sockets, through the public asyncio API.

Every test runs on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions, and checks that no file descriptor is left open.  Certificates are made
here by ``trustme``: a test CA, a server certificate for ``localhost``, a client certificate
for mutual TLS, an expired one, and one from a CA nobody trusts.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from _net import HAS_UNIX, run

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak")

_CA = trustme.CA()
_SERVER = _CA.issue_cert("localhost")
_CLIENT = _CA.issue_cert("client.test")
_EXPIRED = _CA.issue_cert(
    "localhost",
    not_before=datetime.datetime(2000, 1, 1),
    not_after=datetime.datetime(2001, 1, 1),
)
_STRANGER = trustme.CA().issue_cert("localhost")


def server_context(cert: trustme.LeafCert = _SERVER, require_client: bool = False) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        _CA.configure_trust(context)
    return context


def client_context(cert: trustme.LeafCert | None = None) -> Any:
    context = ssl.create_default_context()
    _CA.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


class Place:
    """TCP or a Unix socket: where a TLS server listens and how to reach it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        return self.name

    async def server(self, factory: Callable[[], asyncio.BaseProtocol], **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self.name == "unix":
            self._dir = tempfile.TemporaryDirectory()
            path = os.path.join(self._dir.name, "sock")
            return await loop.create_unix_server(factory, path, **kw)
        return await loop.create_server(factory, "127.0.0.1", 0, **kw)

    async def connect(
        self, server: Any, factory: Callable[[], asyncio.BaseProtocol], **kw: Any
    ) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        address = server.sockets[0].getsockname()
        if kw.get("server_hostname") is None and kw.get("ssl"):
            kw["server_hostname"] = "localhost"
        if self.name == "unix":
            return await loop.create_unix_connection(factory, address, **kw)
        return await loop.create_connection(factory, *address[:2], **kw)

    def cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()


_PLACES = [
    pytest.param("tcp"),
    pytest.param("unix", marks=pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")),
]


@pytest.fixture(params=_PLACES)
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    where = Place(request.param)
    try:
        yield where
    finally:
        where.cleanup()


class Recorder(asyncio.Protocol):
    """Records its callbacks; echoes if asked to."""

    def __init__(self, echo: bool = False) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.echo = echo
        self.transport: Any = None
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self.got_data = asyncio.Event()
        self.flow: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got_data.set()
        if self.echo:
            self.transport.write(data)

    def eof_received(self) -> None:
        self.events.append("eof")

    def pause_writing(self) -> None:
        self.flow.append("pause")

    def resume_writing(self) -> None:
        self.flow.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


class Servers:
    """The server-side protocols a server made, in order."""

    def __init__(self, echo: bool = False) -> None:
        self.protocols: list[Recorder] = []
        self.echo = echo

    def __call__(self) -> Recorder:
        protocol = Recorder(self.echo)
        self.protocols.append(protocol)
        return protocol


async def _close(server: Any) -> None:
    # asyncio sets up each accepted TLS connection in a task: let those finish first.
    await _until(lambda: len(asyncio.all_tasks()) == 1)
    server.close()
    await server.wait_closed()


# -- connecting, exchanging, closing ----------------------------------------------------


def test_echo_and_extra_info(any_loop: asyncio.AbstractEventLoop, place: Place) -> None:
    async def main() -> None:
        servers = Servers(echo=True)
        context = server_context()
        server = await place.server(servers, ssl=context)
        assert server._ssl_context is context
        client_ctx = client_context()
        transport, client = await place.connect(server, Recorder, ssl=client_ctx)
        assert client.events == ["made"]
        info = transport.get_extra_info
        assert info("sslcontext") is client_ctx
        assert isinstance(info("ssl_object"), ssl.SSLObject)
        assert info("peercert")["subjectAltName"] == (("DNS", "localhost"),)
        _, version, _ = info("cipher")
        assert version.startswith("TLS")
        assert info("compression") is None
        assert info("socket") is not None  # From the plain transport.
        assert info("no such key", "default") == "default"
        assert "ssl" in type(transport).__name__.lower()
        assert isinstance(transport, asyncio.Transport)
        assert not transport.can_write_eof()
        transport.write(b"hello ")
        transport.writelines([b"over ", bytearray(b"tls")])
        await _until(lambda: len(client.data) >= 14)
        assert client.data == b"hello over tls"
        (peer,) = servers.protocols
        assert peer.transport.get_extra_info("peercert") is None  # No client certificate.
        transport.close()
        assert transport.is_closing()
        assert await client.lost is None
        assert await peer.lost is None
        # Both sides heard close_notify before the end.
        assert client.events == ["made", "data", "eof", "lost"]
        assert peer.events == ["made", "data", "eof", "lost"]
        await _close(server)

    run(any_loop, main())


def test_streams_over_tls(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "localhost", port, ssl=client_context()
        )  # server_hostname defaults to the host.
        writer.write(b"quiet please\n")
        assert await reader.readline() == b"QUIET PLEASE\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await _close(server)

    run(any_loop, main())


def test_buffered_protocol_over_tls(any_loop: asyncio.AbstractEventLoop) -> None:
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(1000)
            self.data = bytearray()
            self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> memoryview:
            # A view: asyncio reads into a copy of a bytearray's tail and loses the bytes.
            return memoryview(self.buf)

        def buffer_updated(self, nbytes: int) -> None:
            self.data += self.buf[:nbytes]

        def connection_lost(self, exc: BaseException | None) -> None:
            self.lost.set_result(None)

    async def main() -> None:
        payload = os.urandom(300_000)
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context())
        transport, client = await Place("tcp").connect(server, Buffered, ssl=client_context())
        await _until(lambda: bool(servers.protocols) and servers.protocols[0].made.done())
        servers.protocols[0].transport.write(payload)
        await _until(lambda: len(client.data) >= len(payload))
        assert client.data == payload
        transport.close()
        await client.lost
        await _close(server)

    run(any_loop, main())


# -- certificates -------------------------------------------------------------------------


def test_mutual_tls(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        servers = Servers(echo=True)
        server = await Place("tcp").server(servers, ssl=server_context(require_client=True))
        transport, client = await Place("tcp").connect(
            server, Recorder, ssl=client_context(_CLIENT)
        )
        transport.write(b"who am i")
        await _until(lambda: len(client.data) >= 8)
        (peer,) = servers.protocols
        assert peer.transport.get_extra_info("peercert")["subjectAltName"] == (
            ("DNS", "client.test"),
        )
        transport.close()
        await client.lost
        await peer.lost
        await _close(server)

    run(any_loop, main())


def test_mutual_tls_without_client_certificate(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context(require_client=True))
        # TLS 1.3: the client's handshake ends before the server checks.  The server then
        # drops the connection (asyncio sends no alert): the client sees an end of stream.
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        assert await client.lost is None
        assert client.events == ["made", "eof", "lost"]
        assert servers.protocols[0].events == []  # The server's protocol never heard of it.
        transport.close()
        await _close(server)

    run(any_loop, main())


@pytest.mark.parametrize(
    ("cert", "hostname", "reason"),
    [
        (_SERVER, "elsewhere.test", "Hostname mismatch"),
        (_EXPIRED, "localhost", "certificate has expired"),
        (_STRANGER, "localhost", "unable to get local issuer certificate"),
    ],
    ids=["hostname-mismatch", "expired", "untrusted"],
)
def test_bad_certificate_fails_the_connect(
    any_loop: asyncio.AbstractEventLoop,
    place: Place,
    cert: trustme.LeafCert,
    hostname: str,
    reason: str,
) -> None:
    async def main() -> None:
        servers = Servers()
        server = await place.server(servers, ssl=server_context(cert))
        with pytest.raises(ssl.SSLCertVerificationError, match=reason):
            await place.connect(server, Recorder, ssl=client_context(), server_hostname=hostname)
        # The server keeps serving (and by the time this connection is up, it has dropped
        # the failed one).
        trusting = client_context()
        trusting.check_hostname = False
        trusting.verify_mode = ssl.CERT_NONE
        transport, client = await place.connect(server, Recorder, ssl=trusting)
        transport.close()
        await client.lost
        assert servers.protocols[0].events == []
        assert servers.protocols[1].events[0] == "made"
        await _close(server)

    run(any_loop, main())


def test_server_hostname_defaults_to_host(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await Place("tcp").server(Servers(), ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        # The certificate names localhost, not 127.0.0.1: the host is what gets checked.
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            await loop.create_connection(Recorder, "127.0.0.1", port, ssl=client_context())
        transport, client = await loop.create_connection(
            Recorder, "localhost", port, ssl=client_context(), family=socket.AF_INET
        )
        transport.close()
        await client.lost
        # server_hostname='' skips the check (and needs a context that allows it).
        context = client_context()
        context.check_hostname = False
        transport, client = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=context, server_hostname=""
        )
        transport.close()
        await client.lost
        await _close(server)

    run(any_loop, main())


# -- timeouts and peers that misbehave ------------------------------------------------------


def test_handshake_timeout(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        # A plain TCP server that never answers the ClientHello.
        silent = Servers()
        server = await Place("tcp").server(silent)
        with pytest.raises(ConnectionAbortedError, match="SSL handshake is taking longer"):
            await Place("tcp").connect(
                server, Recorder, ssl=client_context(), ssl_handshake_timeout=0.1
            )
        # The server sees the connection end.
        assert await silent.protocols[0].lost is None
        await _close(server)

    run(any_loop, main())


def test_handshake_timeout_is_also_a_timeout_error(loop: sansloop.EventLoop) -> None:
    """sansloop's handshake timeout is asyncio's ConnectionAbortedError *and* a TimeoutError."""

    async def main() -> None:
        silent = Servers()
        server = await Place("tcp").server(silent)
        with pytest.raises(TimeoutError, match="SSL handshake is taking longer") as info:
            await Place("tcp").connect(
                server, Recorder, ssl=client_context(), ssl_handshake_timeout=0.1
            )
        assert isinstance(info.value, ConnectionAbortedError)
        assert await silent.protocols[0].lost is None
        await _close(server)

    run(loop, main())


def test_server_handshake_timeout_closes_the_connection(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> None:
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context(), ssl_handshake_timeout=0.1)
        assert server._ssl_handshake_timeout == 0.1
        # A plain client that never sends a ClientHello.
        _transport, client = await Place("tcp").connect(
            server, Recorder, ssl=None, server_hostname=None
        )
        assert await client.lost is None  # The server gave up and closed.
        assert servers.protocols[0].events == []
        await _close(server)

    run(any_loop, main())


def test_shutdown_timeout(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context())
        transport, client = await Place("tcp").connect(
            server, Recorder, ssl=client_context(), ssl_shutdown_timeout=0.1
        )
        await _until(lambda: bool(servers.protocols) and servers.protocols[0].made.done())
        peer = servers.protocols[0]
        peer.transport.pause_reading()  # It will not read (nor answer) our close_notify.
        transport.close()
        exc = await client.lost
        assert isinstance(exc, TimeoutError)
        assert str(exc) == "SSL shutdown timed out"
        peer.transport.abort()
        await peer.lost
        await _close(server)

    run(any_loop, main())


def test_peer_closing_without_close_notify(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        plain: list[asyncio.Transport] = []
        tasks: list[asyncio.Task[None]] = []
        upgraded: asyncio.Future[asyncio.Transport] = loop.create_future()

        class Upgrader(Recorder):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                plain.append(transport)  # type: ignore[arg-type]

                async def upgrade() -> None:
                    upgraded.set_result(
                        await loop.start_tls(transport, self, server_context(), server_side=True)  # type: ignore[arg-type]
                    )

                tasks.append(loop.create_task(upgrade()))

        server = await Place("tcp").server(Upgrader)
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        tls = await upgraded
        tls.write(b"last words")
        await client.got_data.wait()
        plain[0].abort()  # The TCP stream ends, no close_notify.
        assert await client.lost is None  # asyncio treats it as an end of stream.
        assert client.data == b"last words"
        assert client.events == ["made", "data", "eof", "lost"]
        transport.close()
        await _close(server)

    run(any_loop, main())


def test_peer_vanishing_mid_handshake(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        # A plain server that closes as soon as the ClientHello arrives.
        class Hangup(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.transport.close()

        server = await Place("tcp").server(Hangup)
        with pytest.raises(ConnectionResetError):
            await Place("tcp").connect(server, Recorder, ssl=client_context())
        await _close(server)

    run(any_loop, main())


def test_peer_vanishing_mid_stream(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        plain: list[asyncio.Transport] = []
        upgraded: asyncio.Future[asyncio.Transport] = loop.create_future()
        tasks: list[asyncio.Task[None]] = []

        class Upgrader(Recorder):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                plain.append(transport)  # type: ignore[arg-type]

                async def upgrade() -> None:
                    upgraded.set_result(
                        await loop.start_tls(transport, self, server_context(), server_side=True)  # type: ignore[arg-type]
                    )

                tasks.append(loop.create_task(upgrade()))

        server = await Place("tcp").server(Upgrader)
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        tls = await upgraded
        tls.write(b"partial")
        await client.got_data.wait()
        # The peer's host resets the connection: no close_notify, no FIN, an RST.
        sock = plain[0].get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        plain[0].abort()
        exc = await client.lost
        assert isinstance(exc, ConnectionResetError)
        assert client.events == ["made", "data", "lost"]
        assert transport.is_closing()
        transport.close()
        await _close(server)

    run(any_loop, main())


def test_server_reports_a_failed_handshake_in_debug_mode(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(True)
    any_loop.slow_callback_duration = 10.0  # Keep the log to what this test looks at.
    contexts: list[dict[str, Any]] = []
    any_loop.set_exception_handler(lambda loop, context: contexts.append(context))

    async def main() -> None:
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context())
        # A client that connects and goes away before saying anything.
        transport, client = await Place("tcp").connect(server, Recorder, ssl=None)
        transport.close()
        await client.lost
        await _until(lambda: bool(contexts))
        (context,) = contexts
        assert context["message"] == "Error on transport creation for incoming connection"
        assert isinstance(context["exception"], ConnectionResetError)
        assert context["protocol"] is servers.protocols[0]
        assert servers.protocols[0].events == []
        # A handshake that succeeds is logged with its duration.
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        transport.close()
        await client.lost
        await _close(server)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run(any_loop, main())
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.endswith("starts SSL handshake") for message in messages)
    assert any(re.search(r": SSL handshake took [0-9.]+ ms$", message) for message in messages)


# -- flow control ---------------------------------------------------------------------------


def test_large_transfer_with_slow_reader(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        size, chunk = 8 * 1024 * 1024, 64 * 1024
        payload = os.urandom(size)
        servers = Servers()
        server = await Place("tcp").server(servers, ssl=server_context())
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        await _until(lambda: bool(servers.protocols) and servers.protocols[0].made.done())
        peer = servers.protocols[0]
        peer.transport.pause_reading()
        assert not peer.transport.is_reading()
        # The reader does not read: the writer, writing while it may, ends up paused.
        sent = 0
        while client.flow != ["pause"]:
            transport.write(payload[sent : sent + chunk])
            sent += chunk
            await asyncio.sleep(0)
        assert transport.get_write_buffer_size() >= 512 * 1024  # asyncio's high-water mark
        for _ in range(20):
            await asyncio.sleep(0)
        assert client.flow == ["pause"]
        assert len(peer.data) == 0

        async def write_rest() -> None:
            nonlocal sent
            while sent < size:
                if len(client.flow) % 2:  # Paused: wait for resume_writing.
                    await asyncio.sleep(0)
                    continue
                transport.write(payload[sent : sent + chunk])
                sent += chunk
                await asyncio.sleep(0)

        writer = asyncio.ensure_future(write_rest())
        # Read slowly: a little, then pause again, until everything arrived.
        while len(peer.data) < size:
            peer.got_data.clear()
            peer.transport.resume_reading()
            await peer.got_data.wait()
            peer.transport.pause_reading()
            await asyncio.sleep(0)
        await writer
        assert client.flow[:2] == ["pause", "resume"]
        assert hashlib.sha256(peer.data).digest() == hashlib.sha256(payload).digest()
        assert transport.get_write_buffer_size() == 0
        transport.close()
        peer.transport.resume_reading()
        await client.lost
        await peer.lost
        await _close(server)

    run(any_loop, main(), timeout=60)


def test_write_buffer_limits(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await Place("tcp").server(Servers(), ssl=server_context())
        transport, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        with pytest.raises(ValueError, match=r"high.*must be >= low"):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.close()
        await client.lost
        await _close(server)

    run(any_loop, main())


# -- start_tls ----------------------------------------------------------------------------


def test_start_tls_upgrade(any_loop: asyncio.AbstractEventLoop, place: Place) -> None:
    async def main() -> None:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            assert writer.get_extra_info("ssl_object") is not None
            line = await reader.readline()
            writer.write(line[::-1])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            done.set_result(line)

        if place.name == "unix":
            path = os.path.join(tempfile.mkdtemp(), "s")
            server = await asyncio.start_unix_server(handle, path)
            reader, writer = await asyncio.open_unix_connection(path)
        else:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.get_extra_info("ssl_object") is None
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_context(), server_hostname="localhost")
        assert writer.get_extra_info("peercert")["subjectAltName"] == (("DNS", "localhost"),)
        writer.write(b"secret\n")
        assert await reader.read() == b"\nterces"
        assert await done == b"secret\n"
        writer.close()
        await writer.wait_closed()
        await _close(server)
        if place.name == "unix":
            shutil.rmtree(os.path.dirname(path))

    run(any_loop, main())


def test_tls_over_tls(any_loop: asyncio.AbstractEventLoop) -> None:
    """start_tls over a TLS transport: two layers, as through an HTTPS proxy."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        inner_done: asyncio.Future[asyncio.Transport] = loop.create_future()
        tasks: list[asyncio.Task[None]] = []

        class Upgrader(Recorder):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)

                async def upgrade() -> None:
                    inner = await loop.start_tls(
                        transport,  # type: ignore[arg-type]
                        self,
                        server_context(),
                        server_side=True,
                    )
                    self.transport = inner
                    inner_done.set_result(inner)

                tasks.append(loop.create_task(upgrade()))

        server = await Place("tcp").server(Upgrader, ssl=server_context())
        outer, client = await Place("tcp").connect(server, Recorder, ssl=client_context())
        inner = await loop.start_tls(outer, client, client_context(), server_hostname="localhost")
        server_inner = await inner_done
        assert inner is not outer
        assert inner.get_extra_info("ssl_object") is not outer.get_extra_info("ssl_object")
        inner.write(b"nested")
        await _until(lambda: len(server_inner.get_protocol().data) >= 6)
        assert server_inner.get_protocol().data == b"nested"
        server_inner.write(b"reply")
        await _until(lambda: len(client.data) >= 5)
        assert client.data == b"reply"
        inner.close()
        await client.lost
        outer.close()
        await _close(server)

    run(any_loop, main())


def test_start_tls_argument_checks(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await Place("tcp").server(Servers())
        transport, client = await Place("tcp").connect(
            server, Recorder, ssl=None, server_hostname=None
        )
        with pytest.raises(TypeError, match="sslcontext is expected to be an instance of"):
            await loop.start_tls(transport, client, object())  # type: ignore[arg-type]
        transport.close()
        await client.lost
        await _close(server)

    run(any_loop, main())


# -- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"ssl_handshake_timeout": 0}, ValueError, "ssl_handshake_timeout should be a positive"),
        ({"ssl_shutdown_timeout": -1}, ValueError, "ssl_shutdown_timeout should be a positive"),
    ],
)
def test_bad_timeouts(
    any_loop: asyncio.AbstractEventLoop, kwargs: dict[str, Any], exc: type, message: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await Place("tcp").server(Servers())
        # asyncio checks these once connected, and leaves a socket it made open: pass one.
        address = server.sockets[0].getsockname()
        with socket.create_connection(address) as sock, pytest.raises(exc, match=message):
            await loop.create_connection(
                Recorder, sock=sock, ssl=client_context(), server_hostname="x", **kwargs
            )
        await _close(server)

    run(any_loop, main())


def test_server_side_needs_a_context(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with b:
            with pytest.raises(ValueError, match="Server side SSL needs a valid SSLContext"):
                await loop.connect_accepted_socket(Recorder, a, ssl=True)
            a.close()

    run(any_loop, main())
