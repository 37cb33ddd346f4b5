"""Datagram endpoints through the public API, with real sockets.

Behaviour tests run on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions, messages included; the few places where sansloop deliberately differs say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import sys
import tempfile
from asyncio import trsock
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from _net import HAS_IPV6, HAS_UNIX, run

import sansloop
from sansloop.drivers import Driver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_T = TypeVar("_T")

PY313 = sys.version_info >= (3, 13)
#: Python 3.13 counts 8 bytes per queued datagram for its header.
HEADER = 8 if PY313 else 0


FAMILIES = [
    pytest.param(socket.AF_INET, id="ipv4"),
    pytest.param(
        socket.AF_INET6,
        id="ipv6",
        marks=pytest.mark.skipif(not HAS_IPV6, reason="IPv6 is not available"),
    ),
]


@contextlib.contextmanager
def _unix_dir() -> Iterator[str]:
    # Short paths: AF_UNIX addresses are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(dir="/tmp" if os.path.isdir("/tmp") else None) as tmp:
        yield tmp


class Recorder(asyncio.DatagramProtocol):
    """Records every callback; ``wait_for(n)`` waits until ``n`` datagrams arrived."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.transport: Any = None
        self.events: list[Any] = []
        self.datagrams: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []
        self._changed: asyncio.Event | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed = asyncio.Event()
            await self._changed.wait()

    async def wait_for(self, n: int) -> None:
        await self.wait_until(lambda: len(self.datagrams) >= n)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append((data, addr))
        if self.echo:
            self.transport.sendto(b"echo:" + data, addr)
        self._notify()

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        self._notify()

    def pause_writing(self) -> None:
        self.events.append("pause")
        self._notify()

    def resume_writing(self) -> None:
        self.events.append("resume")
        self._notify()

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)
        self._notify()


def _host(family: int) -> str:
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _closed_udp_port(family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((_host(family), 0))
        port: int = sock.getsockname()[1]
    return port


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
def test_udp_echo(any_loop: asyncio.AbstractEventLoop, family: int, connected: bool) -> None:
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=(_host(family), 0)
        )
        address = st.get_extra_info("sockname")
        if connected:
            ct, client = await loop.create_datagram_endpoint(Recorder, remote_addr=address[:2])
        else:
            ct, client = await loop.create_datagram_endpoint(
                Recorder, local_addr=(_host(family), 0)
            )
        try:
            assert isinstance(st, asyncio.Transport)
            assert isinstance(ct.get_extra_info("socket"), trsock.TransportSocket)
            assert ct.get_extra_info("socket").family == family
            assert st.get_extra_info("peername") is None
            if connected:
                assert ct.get_extra_info("peername") == address
                ct.sendto(b"one")
                ct.sendto(b"two", address[:2] if family == socket.AF_INET else address)
            else:
                assert ct.get_extra_info("peername") is None
                ct.sendto(b"one", address)
                ct.sendto(b"two", address)
            await client.wait_for(2)
            assert [d for d, _ in client.datagrams] == [b"echo:one", b"echo:two"]
            assert all(a == address for _, a in client.datagrams)
            assert server.datagrams[0][1] == ct.get_extra_info("sockname")
            assert ct.get_write_buffer_size() == 0
            assert client.events == ["made"]
        finally:
            ct.close()
            st.close()
        assert await client.lost is None
        assert await server.lost is None
        assert ct.is_closing()
        assert client.transport is ct

    run(any_loop, main())


def test_sansloop_transport_is_a_datagram_transport(loop: sansloop.EventLoop) -> None:
    # asyncio's selector transport is one from 3.12 on; sansloop's on every version.
    async def main() -> None:
        t, p = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        assert isinstance(t, asyncio.DatagramTransport)
        assert "fd=" in repr(t)
        assert "read=polling" in repr(t)
        t.close()
        await p.lost
        assert "closed" in repr(t)

    run(loop, main())


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
def test_unix_datagram_echo(any_loop: asyncio.AbstractEventLoop, connected: bool) -> None:
    async def main(tmp: str) -> None:
        loop = any_loop
        server_path = os.path.join(tmp, "server")
        client_path = os.path.join(tmp, "client")
        st, server = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=server_path, family=socket.AF_UNIX
        )
        if connected:
            ct, client = await loop.create_datagram_endpoint(
                Recorder,
                local_addr=client_path,
                remote_addr=server_path,
                family=socket.AF_UNIX,
            )
        else:
            ct, client = await loop.create_datagram_endpoint(
                Recorder, local_addr=client_path, family=socket.AF_UNIX
            )
        try:
            assert st.get_extra_info("sockname") == server_path
            if connected:
                assert ct.get_extra_info("peername") == server_path
                ct.sendto(b"hi")
                with pytest.raises(ValueError, match=r"^Invalid address: must be None or "):
                    ct.sendto(b"hi", client_path)
            else:
                ct.sendto(b"hi", server_path)
            await client.wait_for(1)
            assert client.datagrams == [(b"echo:hi", server_path)]
            assert server.datagrams == [(b"hi", client_path)]
        finally:
            ct.close()
            st.close()
        await client.lost
        await server.lost

    with _unix_dir() as tmp:
        run(any_loop, main(tmp))


@pytest.mark.parametrize("family", FAMILIES)
def test_many_datagrams_arrive_whole_and_in_order(
    any_loop: asyncio.AbstractEventLoop, family: int
) -> None:
    batches, per_batch = 20, 50

    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(
            lambda: Recorder(echo=True), local_addr=(_host(family), 0)
        )
        ct, client = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")[:2]
        )
        try:
            sent = []
            for batch in range(batches):
                # One batch at a time stays well inside the loopback socket buffers.
                for i in range(per_batch):
                    payload = f"{batch}:{i}:".encode() + bytes([i]) * (i * 20)
                    sent.append(payload)
                    ct.sendto(payload)
                await client.wait_for(len(sent))
            assert [d for d, _ in server.datagrams] == sent
            assert [d for d, _ in client.datagrams] == [b"echo:" + d for d in sent]
            assert client.errors == server.errors == []
        finally:
            ct.close()
            st.close()
        await client.lost
        await server.lost

    run(any_loop, main())


def test_large_datagram_up_to_max_size(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        ct, _ = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")
        )
        try:
            payload = os.urandom(60_000)
            ct.sendto(payload)
            await server.wait_for(1)
            assert server.datagrams[0][0] == payload
        finally:
            ct.close()
            st.close()

    run(any_loop, main())


def test_empty_datagrams(any_loop: asyncio.AbstractEventLoop) -> None:
    # Python 3.13 sends them; earlier versions drop them silently.
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        ct, _ = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")
        )
        try:
            ct.sendto(b"")
            ct.sendto(b"end")
            await server.wait_for(2 if PY313 else 1)
            expected = [b"", b"end"] if PY313 else [b"end"]
            assert [d for d, _ in server.datagrams] == expected
        finally:
            ct.close()
            st.close()

    run(any_loop, main())


def test_given_socket(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = any_loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        t, p = await loop.create_datagram_endpoint(Recorder, sock=sock)
        assert sock.gettimeout() == 0
        assert t.get_extra_info("socket").fileno() == sock.fileno()
        t.close()
        await p.lost
        assert sock.fileno() == -1

    run(any_loop, main())


def test_given_connected_socket_sends_to_its_peer(any_loop: asyncio.AbstractEventLoop) -> None:
    # With a connected sock= and no remote_addr, asyncio sends with send(): the address
    # given to sendto() is not checked and not used.
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(st.get_extra_info("sockname"))
        ct, _ = await loop.create_datagram_endpoint(Recorder, sock=sock)
        try:
            ct.sendto(b"x", ("127.0.0.1", _closed_udp_port()))
            await server.wait_for(1)
            assert server.datagrams[0][0] == b"x"
        finally:
            ct.close()
            st.close()

    run(any_loop, main())


def test_allow_broadcast_keeps_the_socket_unconnected(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        address = st.get_extra_info("sockname")
        ct, _ = await loop.create_datagram_endpoint(
            Recorder, remote_addr=address, allow_broadcast=True
        )
        try:
            sock = ct.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
            assert ct.get_extra_info("peername") is None
            ct.sendto(b"to the remote_addr")
            with pytest.raises(ValueError, match=r"^Invalid address: must be None or "):
                ct.sendto(b"x", ("127.0.0.1", 1))
            await server.wait_for(1)
            assert server.datagrams[0][0] == b"to the remote_addr"
        finally:
            ct.close()
            st.close()

    run(any_loop, main())


def test_socket_options(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = any_loop
        t, _ = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        sock = t.get_extra_info("socket")
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        if hasattr(socket, "SO_REUSEPORT"):
            assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        t.close()
        if hasattr(socket, "SO_REUSEPORT"):
            t1, _ = await loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", 0), reuse_port=True
            )
            port = t1.get_extra_info("sockname")[1]
            # reuse_port lets a second endpoint bind the same port.
            t2, _ = await loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", port), reuse_port=True
            )
            assert t2.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
            t1.close()
            t2.close()

    run(any_loop, main())


def test_no_addresses_but_a_family(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        t, p = await any_loop.create_datagram_endpoint(Recorder, family=socket.AF_INET)
        sock = t.get_extra_info("socket")
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_DGRAM
        assert t.get_extra_info("sockname") == ("0.0.0.0", 0)  # Never bound.
        t.close()
        await p.lost

    run(any_loop, main())


def test_pause_and_resume_reading(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = any_loop
        st, server = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        ct, _ = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")
        )
        try:
            st.pause_reading()
            assert not st.is_reading()
            ct.sendto(b"a")
            ct.sendto(b"b")
            for _ in range(10):
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)
            assert server.datagrams == []
            st.resume_reading()
            await server.wait_for(2)
            assert [d for d, _ in server.datagrams] == [b"a", b"b"]
        finally:
            ct.close()
            st.close()

    run(any_loop, main())


def test_protocol_errors_reach_the_exception_handler(any_loop: asyncio.AbstractEventLoop) -> None:
    class Failing(Recorder):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            super().datagram_received(data, addr)
            raise ZeroDivisionError("protocol bug")

    async def main() -> None:
        loop = any_loop
        contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: contexts.append(context))
        st, server = await loop.create_datagram_endpoint(Failing, local_addr=("127.0.0.1", 0))
        ct, _ = await loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")
        )
        try:
            ct.sendto(b"a")
            await server.wait_for(1)
            ct.sendto(b"b")
            await server.wait_for(2)  # The transport keeps working.
            assert len(contexts) >= 1
            assert contexts[0]["message"].startswith("Exception in callback")
            assert isinstance(contexts[0]["exception"], ZeroDivisionError)
            assert not st.is_closing()
        finally:
            ct.close()
            st.close()
            loop.set_exception_handler(None)

    run(any_loop, main())


def test_stream_methods_are_not_there(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        t, _ = await any_loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        try:
            with pytest.raises(NotImplementedError):
                t.write(b"x")  # type: ignore[attr-defined]
            with pytest.raises(TypeError, match=r"^data argument must be a bytes-like object"):
                t.sendto("text", ("127.0.0.1", 1))  # type: ignore[arg-type]
        finally:
            t.close()

    run(any_loop, main())


# -- errors from the network ----------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux reports ICMP errors")
@pytest.mark.parametrize("family", FAMILIES)
def test_connection_refused_goes_to_error_received(
    any_loop: asyncio.AbstractEventLoop, family: int
) -> None:
    async def main() -> None:
        t, p = await any_loop.create_datagram_endpoint(
            Recorder, remote_addr=(_host(family), _closed_udp_port(family))
        )
        try:
            t.sendto(b"anyone?")
            await p.wait_until(lambda: bool(p.errors))
            assert isinstance(p.errors[0], ConnectionRefusedError)
            assert not t.is_closing()
            # The endpoint still works: the next error comes the same way.
            t.sendto(b"still?")
            await p.wait_until(lambda: len(p.errors) >= 2)
            assert isinstance(p.errors[1], ConnectionRefusedError)
        finally:
            t.close()
        await p.lost
        assert ("lost", None) in p.events

    run(any_loop, main())


# -- a full socket: queueing, flow control, close and abort -----------------------------------


async def _blocked_unix_endpoint(
    loop: asyncio.AbstractEventLoop, tmp: str
) -> tuple[asyncio.DatagramTransport, Recorder, socket.socket, list[bytes]]:
    """A connected Unix datagram endpoint whose peer does not read, sent to until it queues.

    A Unix datagram socket blocks its sender once the receiver's queue is full, so the
    transport has to queue what follows.  Returns (transport, protocol, peer, sent).
    """
    path = os.path.join(tmp, "peer")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(path)
    peer.setblocking(False)
    t, p = await loop.create_datagram_endpoint(Recorder, remote_addr=path, family=socket.AF_UNIX)
    t.set_write_buffer_limits(high=4000, low=1000)
    sent = []
    for i in range(10_000):
        payload = b"%05d" % i + b"x" * 995
        sent.append(payload)
        t.sendto(payload)
        if t.get_write_buffer_size():
            break
    else:
        raise AssertionError("the socket never blocked")
    return t, p, peer, sent


def _drain(peer: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(peer.recv(65536))
        except BlockingIOError:
            return got


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_queued_datagrams_and_flow_control(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main(tmp: str) -> None:
        t, p, peer, sent = await _blocked_unix_endpoint(any_loop, tmp)
        with peer:
            assert t.get_write_buffer_size() == 1000 + HEADER
            assert p.events == ["made"]
            for i in range(len(sent), len(sent) + 5):
                payload = b"%05d" % i + b"x" * 995
                sent.append(payload)
                t.sendto(payload)
            # Five more queued: 6000 (+ headers) crossed the high-water mark once.
            assert t.get_write_buffer_size() == 6 * (1000 + HEADER)
            assert p.events == ["made", "pause"]
            got: list[bytes] = []
            while len(got) < len(sent):
                got += _drain(peer)
                await asyncio.sleep(0.001)
            assert got == sent
            await p.wait_until(lambda: "resume" in p.events)
            assert p.events == ["made", "pause", "resume"]
            t.close()
            await p.lost

    with _unix_dir() as tmp:
        run(any_loop, main(tmp))


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_queue_drains_to_zero(loop: sansloop.EventLoop) -> None:
    # asyncio 3.13.0 leaves 8 bytes counted per datagram that had to wait (CPython
    # gh-135444, fixed in later 3.13 releases); sansloop takes the header off again.
    async def main(tmp: str) -> None:
        t, p, peer, sent = await _blocked_unix_endpoint(loop, tmp)
        with peer:
            got: list[bytes] = []
            while len(got) < len(sent):
                got += _drain(peer)
                await asyncio.sleep(0.001)
            assert got == sent
            await p.wait_until(lambda: t.get_write_buffer_size() == 0)
            t.close()
            await p.lost

    with _unix_dir() as tmp:
        run(loop, main(tmp))


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_close_flushes_the_queue(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main(tmp: str) -> None:
        t, p, peer, sent = await _blocked_unix_endpoint(any_loop, tmp)
        with peer:
            t.sendto(b"last")
            sent.append(b"last")
            t.close()
            assert t.is_closing()
            await asyncio.sleep(0.01)
            assert not p.lost.done()  # Waiting for the queue to leave.
            got: list[bytes] = []
            while not p.lost.done():
                got += _drain(peer)
                await asyncio.sleep(0.001)
            got += _drain(peer)
            assert got == sent
            assert await p.lost is None

    with _unix_dir() as tmp:
        run(any_loop, main(tmp))


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_abort_drops_the_queue(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main(tmp: str) -> None:
        t, p, peer, sent = await _blocked_unix_endpoint(any_loop, tmp)
        with peer:
            t.abort()
            assert await p.lost is None
            got = _drain(peer)
            # What the kernel had taken arrives; the queued datagram never does.
            assert got == sent[:-1]
            assert t.get_extra_info("socket").fileno() == -1

    with _unix_dir() as tmp:
        run(any_loop, main(tmp))


def test_connected_sends_after_close_are_dropped(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        st, server = await any_loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        ct, client = await any_loop.create_datagram_endpoint(
            Recorder, remote_addr=st.get_extra_info("sockname")
        )
        ct.close()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(6):
                ct.sendto(b"late")
        await client.lost
        await asyncio.sleep(0.01)
        st.close()
        assert server.datagrams == []
        drops = [r for r in caplog.records if r.getMessage() == "socket.send() raised exception."]
        assert len(drops) == 2

    run(any_loop, main())


# -- bad arguments: asyncio's exception types and messages ----------------------------------


def _error(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> BaseException:
    try:
        run(loop, coro)
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def test_a_stream_socket_is_refused(any_loop: asyncio.AbstractEventLoop) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        exc = _error(any_loop, any_loop.create_datagram_endpoint(Recorder, sock=sock))
        assert type(exc) is ValueError
        expected = "A datagram socket was expected" if PY313 else "A UDP Socket was expected"
        assert str(exc) == f"{expected}, got {sock!r}"


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_a_seqpacket_socket(any_loop: asyncio.AbstractEventLoop) -> None:
    # 3.11 and 3.12 want SOCK_DGRAM exactly; 3.13 refuses only SOCK_STREAM.
    async def main(sock: socket.socket) -> None:
        t, _ = await any_loop.create_datagram_endpoint(Recorder, sock=sock)
        t.close()

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if PY313:
        run(any_loop, main(sock))
        assert sock.fileno() == -1
    else:
        with sock:
            exc = _error(any_loop, main(sock))
            assert type(exc) is ValueError
            assert str(exc) == f"A UDP Socket was expected, got {sock!r}"


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"local_addr": ("127.0.0.1", 0)}, "local_addr=('127.0.0.1', 0)"),
        ({"remote_addr": ("127.0.0.1", 9)}, "remote_addr=('127.0.0.1', 9)"),
        ({"family": socket.AF_INET, "proto": 17}, f"family={socket.AF_INET!s}, proto=17"),
        ({"flags": 1, "reuse_port": True}, "flags=1, reuse_port=True"),
        ({"allow_broadcast": True}, "allow_broadcast=True"),
    ],
)
def test_socket_modifiers_with_sock(
    any_loop: asyncio.AbstractEventLoop, kwargs: dict[str, Any], shown: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        exc = _error(any_loop, any_loop.create_datagram_endpoint(Recorder, sock=sock, **kwargs))
        assert type(exc) is ValueError
        assert str(exc) == (
            f"socket modifier keyword arguments can not be used when sock is specified. ({shown})"
        )
        assert sock.fileno() != -1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "unexpected address family"),
        ({"local_addr": "localhost"}, TypeError, "2-tuple is expected"),
        ({"remote_addr": ("localhost", 1, 2, 3)}, TypeError, "2-tuple is expected"),
        ({"local_addr": ["127.0.0.1", 0]}, TypeError, "2-tuple is expected"),
        pytest.param(
            {"local_addr": ("127.0.0.1", 0), "family": getattr(socket, "AF_UNIX", 1)},
            TypeError,
            "string is expected",
            marks=pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX"),
        ),
        pytest.param(
            {"remote_addr": b"/tmp/x", "family": getattr(socket, "AF_UNIX", 1)},
            TypeError,
            "string is expected",
            marks=pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX"),
        ),
        pytest.param(
            {"remote_addr": ("127.0.0.1", 9), "local_addr": ("::1", 0)},
            ValueError,
            "can not get address information",
            marks=pytest.mark.skipif(not HAS_IPV6, reason="IPv6 is not available"),
        ),
    ],
)
def test_bad_addresses(
    any_loop: asyncio.AbstractEventLoop,
    fd_count: Callable[[], int],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = fd_count()
    exc = _error(any_loop, any_loop.create_datagram_endpoint(Recorder, **kwargs))
    assert type(exc) is error
    assert str(exc) == message
    assert fd_count() == before


def test_reuse_address_is_gone(any_loop: asyncio.AbstractEventLoop) -> None:
    for value in (True, False):
        with pytest.raises(TypeError) as info:
            any_loop.create_datagram_endpoint(  # type: ignore[call-arg]
                Recorder, local_addr=("127.0.0.1", 0), reuse_address=value
            )
        assert str(info.value).endswith(
            "create_datagram_endpoint() got an unexpected keyword argument 'reuse_address'"
        )


def test_getaddrinfo_returning_nothing(any_loop: asyncio.AbstractEventLoop) -> None:
    async def nothing(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    any_loop.getaddrinfo = nothing  # type: ignore[method-assign]
    exc = _error(any_loop, any_loop.create_datagram_endpoint(Recorder, local_addr=("localhost", 0)))
    assert type(exc) is OSError
    assert str(exc) == "getaddrinfo() returned empty list"


def test_host_names_are_resolved_through_getaddrinfo(any_loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[Any, ...]] = []

    async def fake(host: Any, port: Any, **kwargs: Any) -> list[Any]:
        calls.append((host, port, kwargs))
        return [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("127.0.0.1", port))]

    any_loop.getaddrinfo = fake  # type: ignore[method-assign]

    async def main() -> None:
        t, _ = await any_loop.create_datagram_endpoint(
            Recorder, local_addr=("somewhere.invalid", 0), flags=socket.AI_PASSIVE
        )
        assert t.get_extra_info("sockname")[0] == "127.0.0.1"
        t.close()

    run(any_loop, main())
    assert calls == [
        (
            "somewhere.invalid",
            0,
            {
                "family": 0,
                "type": socket.SOCK_DGRAM,
                "proto": 0,
                "flags": socket.AI_PASSIVE,
            },
        )
    ]


def test_bind_error_closes_the_socket(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        before = fd_count()
        exc = _error(
            any_loop,
            any_loop.create_datagram_endpoint(Recorder, local_addr=taken.getsockname()),
        )
        assert isinstance(exc, OSError)
        assert exc.errno == errno.EADDRINUSE
        assert fd_count() == before


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_unix_connect_error(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    with _unix_dir() as tmp:
        before = fd_count()
        exc = _error(
            any_loop,
            any_loop.create_datagram_endpoint(
                Recorder, remote_addr=os.path.join(tmp, "nobody"), family=socket.AF_UNIX
            ),
        )
        assert type(exc) is FileNotFoundError
        assert fd_count() == before


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_unix_stale_socket_is_removed(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main(path: str) -> None:
        t, _ = await any_loop.create_datagram_endpoint(
            Recorder, local_addr=path, family=socket.AF_UNIX
        )
        assert t.get_extra_info("sockname") == path
        t.close()

    with _unix_dir() as tmp:
        path = os.path.join(tmp, "stale")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
            old.bind(path)
        assert os.path.exists(path)
        run(any_loop, main(path))
        # A file that is not a socket is left alone: bind fails.
        other = os.path.join(tmp, "file")
        with open(other, "w"):
            pass
        exc = _error(any_loop, main(other))
        assert isinstance(exc, OSError)
        assert exc.errno == errno.EADDRINUSE
        assert os.path.exists(other)


@pytest.mark.skipif(not HAS_UNIX, reason="needs AF_UNIX")
def test_unix_stale_socket_that_cannot_be_checked_is_logged(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    with _unix_dir() as tmp:
        path = os.path.join(tmp, "not-a-dir", "x")
        with open(os.path.join(tmp, "not-a-dir"), "w"):
            pass
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            exc = _error(
                any_loop,
                any_loop.create_datagram_endpoint(Recorder, local_addr=path, family=socket.AF_UNIX),
            )
        assert isinstance(exc, NotADirectoryError)
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            m.startswith(f"Unable to check or remove stale UNIX socket {path!r}: ")
            for m in messages
        )


def test_reuse_port_without_support(
    any_loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
    fd_count: Callable[[], int],
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    before = fd_count()
    exc = _error(
        any_loop,
        any_loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0), reuse_port=True),
    )
    assert type(exc) is ValueError
    assert str(exc) == "reuse_port not supported by socket module"
    assert fd_count() == before


@pytest.mark.parametrize("failing", ["socket", "setblocking", "setsockopt"])
def test_socket_setup_errors_close_the_socket(
    any_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    made: list[socket.socket] = []
    real = socket.socket

    class Failing(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if failing == "socket":
                raise OSError(errno.EMFILE, "no more")
            super().__init__(*args, **kwargs)
            made.append(self)

        def setblocking(self, flag: bool) -> None:
            if failing == "setblocking":
                raise OSError(errno.EBADF, "setblocking failed")
            super().setblocking(flag)

        def setsockopt(self, *args: Any) -> None:
            if failing == "setsockopt":
                raise OSError(errno.ENOPROTOOPT, "setsockopt failed")
            super().setsockopt(*args)

    monkeypatch.setattr(socket, "socket", Failing)
    exc = _error(
        any_loop,
        any_loop.create_datagram_endpoint(
            Recorder, family=socket.AF_INET, allow_broadcast=failing == "setsockopt"
        ),
    )
    monkeypatch.undo()
    assert type(exc) is OSError
    assert exc.errno == {"socket": errno.EMFILE, "setblocking": errno.EBADF}.get(
        failing, errno.ENOPROTOOPT
    )
    assert all(sock.fileno() == -1 for sock in made)
    assert len(made) == (0 if failing == "socket" else 1)


def test_failing_protocol_factory(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    def factory() -> asyncio.DatagramProtocol:
        raise ZeroDivisionError

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        exc = _error(any_loop, any_loop.create_datagram_endpoint(factory, sock=sock))
        assert type(exc) is ZeroDivisionError
        assert sock.fileno() != -1  # The caller's socket stays theirs.


def test_failing_protocol_factory_closes_the_socket_it_made(
    loop: sansloop.EventLoop, fd_count: Callable[[], int]
) -> None:
    # asyncio leaves the socket it made open (to a ResourceWarning); sansloop closes it.
    def factory() -> asyncio.DatagramProtocol:
        raise ZeroDivisionError

    before = fd_count()
    exc = _error(loop, loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0)))
    assert type(exc) is ZeroDivisionError
    assert fd_count() == before


def test_socket_owned_by_a_transport_is_refused(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        t, _ = await any_loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        try:
            fd = t.get_extra_info("socket").fileno()
            with pytest.raises(RuntimeError, match=rf"^File descriptor {fd} is used by transport"):
                any_loop.add_reader(fd, lambda: None)
        finally:
            t.close()

    run(any_loop, main())


def test_debug_mode_logs_the_endpoint(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(True)

    async def main() -> None:
        t, _ = await any_loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t.close()
        t2, _ = await any_loop.create_datagram_endpoint(Recorder, family=socket.AF_INET)
        t2.close()

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run(any_loop, main())
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("Datagram endpoint local_addr=('127.0.0.1', 0) remote_addr=None created: (")
        for m in messages
    )
    assert any(m.startswith("Datagram endpoint remote_addr=None created: (") for m in messages)


def test_driver_without_datagrams(clock_only_driver: Driver, fd_count: Callable[[], int]) -> None:
    loop = sansloop.new_event_loop(driver=clock_only_driver)
    try:
        before = fd_count()
        exc = _error(loop, loop.create_datagram_endpoint(Recorder, family=socket.AF_INET))
        assert type(exc) is NotImplementedError
        assert "cannot carry datagram transports" in str(exc)
        assert fd_count() == before
    finally:
        loop.close()


def test_no_descriptor_leaks(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    async def main() -> None:
        for _ in range(20):
            st, server = await any_loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", 0)
            )
            ct, client = await any_loop.create_datagram_endpoint(
                Recorder, remote_addr=st.get_extra_info("sockname")
            )
            ct.sendto(b"x")
            await server.wait_for(1)
            ct.abort()
            st.close()
            await client.lost
            await server.lost
        # Failures too.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            for _ in range(5):
                with pytest.raises(OSError, match=r"[Aa]ddress already in use"):
                    await any_loop.create_datagram_endpoint(
                        Recorder, local_addr=taken.getsockname(), remote_addr=("127.0.0.1", 9)
                    )

    run(any_loop, main())  # Warm up (the executor, the logging machinery).
    before = fd_count()
    run(any_loop, main())
    assert fd_count() == before
