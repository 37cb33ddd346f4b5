"""The TLS layer driven through its public inputs, with explicit time and a scripted network.

Two layers (client and server) each sit on a scripted plain transport; the test decides when
ciphertext crosses, in what pieces, and when time passes (timers are a list the test fires).
No socket and no clock: what the layers do is decided by the calls they receive.  A
Hypothesis state machine interleaves writes, deliveries in arbitrary pieces, pauses and
resumes on both sides, and checks that each application receives a prefix of what the other
wrote, in order, and everything once the network is drained.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import _fakes
import pytest
import trustme
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sansloop.core import TLSLayer, TLSState

_CA = trustme.CA()
_CERT = _CA.issue_cert("example.test")


def _contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _CERT.configure_cert(server)
    client = ssl.create_default_context()
    _CA.configure_trust(client)
    return client, server


class Timer:
    def __init__(self, host: Host, delay: float, callback: Callable[[], object]) -> None:
        self.host, self.delay, self.callback = host, delay, callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Host(_fakes.Host):
    """The loop, reduced to what the layer uses; callbacks and timers run when the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(self, delay, lambda: callback(*args))
        self.timers.append(timer)
        return timer

    def live_timers(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled]

    def fire(self, timer: Timer) -> None:
        self.timers.remove(timer)
        timer.callback()


class Waiter:
    def __init__(self) -> None:
        self.done = False
        self.exc: BaseException | None = None

    def cancelled(self) -> bool:
        return False

    def set_result(self, result: None) -> None:
        assert not self.done
        self.done = True

    def set_exception(self, exc: BaseException) -> None:
        assert not self.done
        self.done, self.exc = True, exc


class Lower:
    """A scripted plain transport: writes go to ``wire``; the test carries them across."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.wire = bytearray()
        self.reading = True
        self.closed = False
        self.lost: list[BaseException | None] = []
        self.layer: TLSLayer | None = None
        self.peer: Lower | None = None
        self.eof_sent = False  # Closed, and the peer has seen the end of the stream.

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.wire += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self._end(None)

    def abort(self) -> None:
        self._end(None)

    def _force_close(self, exc: BaseException | None) -> None:
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        assert self.layer is not None
        self.host.call_soon(self.layer.connection_lost, exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("peer", 1)}.get(name, default)

    def deliver(self, n: int | None = None) -> int:
        """Carry up to ``n`` bytes of ``wire`` to the peer's layer (all if None)."""
        peer = self.peer
        assert peer is not None
        assert peer.layer is not None
        if peer.closed or not peer.reading:
            return 0
        chunk = bytes(self.wire if n is None else self.wire[:n])
        del self.wire[: len(chunk)]
        if chunk:
            buf = peer.layer.get_buffer(len(chunk))
            size = min(len(buf), len(chunk))
            buf[:size] = chunk[:size]
            peer.layer.buffer_updated(size)
            self.wire[0:0] = chunk[size:]
        return len(chunk)


class App:
    """An application protocol recording what it hears."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.received = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert data
        self.received += data

    def eof_received(self) -> None:
        self.events.append("eof")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))


class BufferedApp(App):
    def __init__(self, size: int = 7) -> None:
        super().__init__()
        self.buf = bytearray(size)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        assert nbytes > 0
        self.received += self.buf[:nbytes]


class Pair:
    """A client and a server layer over two scripted plain transports."""

    def __init__(
        self,
        client_app: App | None = None,
        server_app: App | None = None,
        hostname: str = "example.test",
        **timeouts: float,
    ) -> None:
        client_ctx, server_ctx = _contexts()
        self.host = Host()
        self.capp = client_app or App()
        self.sapp = server_app or App()
        self.cwait, self.swait = Waiter(), Waiter()
        self.client = TLSLayer(
            self.host, self.capp, client_ctx, self.cwait, False, hostname, **timeouts
        )
        self.server = TLSLayer(self.host, self.sapp, server_ctx, self.swait, True, **timeouts)
        self.clow, self.slow = Lower(self.host), Lower(self.host)
        self.clow.layer, self.slow.layer = self.client, self.server
        self.clow.peer, self.slow.peer = self.slow, self.clow
        self.client.connection_made(self.clow)
        self.server.connection_made(self.slow)

    def pump(self, piece: int | None = None) -> None:
        """Carry everything both ways (in pieces of ``piece`` bytes) until nothing moves;
        a closed transport's peer hears the end of the stream once the bytes before it
        arrived (and while it reads)."""
        moved = True
        while moved:
            moved = False
            self.host.run_soon()
            for lower in (self.clow, self.slow):
                while lower.wire and lower.deliver(piece):
                    moved = True
                    self.host.run_soon()
                peer = lower.peer
                assert peer is not None
                if lower.closed and not lower.wire and not lower.eof_sent and peer.reading:
                    lower.eof_sent = True
                    if not peer.closed:
                        self.eof(lower)
                    moved = True

    def eof(self, lower: Lower) -> None:
        """The plain stream of ``lower`` ends: its peer's layer hears EOF."""
        peer = lower.peer
        assert peer is not None
        assert peer.layer is not None
        if not peer.layer.eof_received():
            peer.close()


@pytest.mark.parametrize("piece", [None, 1, 100])
def test_handshake_then_data_both_ways(piece: int | None) -> None:
    pair = Pair()
    pair.pump(piece)
    assert pair.cwait.done
    assert pair.cwait.exc is None
    assert pair.swait.done
    assert pair.swait.exc is None
    assert pair.capp.events == ["made"]
    assert pair.sapp.events == ["made"]
    info = pair.capp.transport.get_extra_info
    assert info("peercert")["subjectAltName"] == (("DNS", "example.test"),)
    assert info("cipher") is not None
    assert info("ssl_object") is not None
    assert info("peername") == ("peer", 1)  # Asked of the plain transport.
    pair.capp.transport.write(b"hello ")
    pair.capp.transport.writelines([b"wor", bytearray(b"ld")])
    pair.sapp.transport.write(memoryview(b"back"))
    pair.pump(piece)
    assert pair.sapp.received == b"hello world"
    assert pair.capp.received == b"back"


def test_writes_before_the_handshake_wait_for_it() -> None:
    pair = Pair()
    pair.client._app_transport.write(b"early")  # type: ignore[union-attr]
    assert pair.client._app_transport.get_write_buffer_size() == 5  # type: ignore[union-attr]
    pair.pump()
    assert pair.sapp.received == b"early"


def test_close_exchanges_close_notify() -> None:
    pair = Pair()
    pair.pump()
    pair.capp.transport.write(b"last words")
    pair.capp.transport.close()
    assert pair.capp.transport.is_closing()
    pair.capp.transport.write(b"dropped")
    pair.pump()
    assert pair.sapp.received == b"last words"
    # The server heard close_notify: eof_received, then it answered and closed.
    assert pair.sapp.events == ["made", "eof", ("lost", None)]
    # The closing side hears eof_received too once the answer came (as in asyncio).
    assert pair.capp.events == ["made", "eof", ("lost", None)]
    assert pair.clow.closed
    assert pair.slow.closed
    assert pair.client._state is TLSState.UNWRAPPED
    assert not pair.host.live_timers()


def test_data_in_flight_when_closing_is_dropped_cleanly() -> None:
    # The client writes; before that arrives, the server closes.  The server's application
    # asked for no more data: it is dropped, and both ends close cleanly (asyncio's unwrap
    # fails here with APPLICATION_DATA_AFTER_CLOSE_NOTIFY instead; uvloop discards too).
    pair = Pair()
    pair.pump()
    pair.capp.transport.write(b"in flight")
    pair.sapp.transport.close()
    pair.pump()
    assert pair.sapp.received == b""
    assert pair.sapp.events == ["made", "eof", ("lost", None)]
    assert pair.capp.events == ["made", "eof", ("lost", None)]
    assert pair.host.errors == []


def test_close_notify_goes_even_while_the_plain_transport_is_full() -> None:
    pair = Pair()
    pair.pump()
    pair.sapp.transport.close()
    pair.host.run_soon()
    pair.client.pause_writing()  # The client's plain transport is over its high-water mark.
    pair.slow.deliver()  # The server's close_notify reaches the client.
    assert pair.capp.events == ["made", "eof"]
    # The client's answer went to its plain transport anyway, before closing it (asyncio
    # keeps it in the BIO, and the server sees a bare end of stream).
    assert pair.clow.wire
    assert not pair.clow.closed
    pair.pump()
    assert pair.sapp.events == ["made", "eof", ("lost", None)]
    assert pair.capp.events == ["made", "eof", ("lost", None)]


def test_unclean_eof_is_an_eof() -> None:
    pair = Pair()
    pair.pump()
    pair.sapp.transport.write(b"data")
    pair.pump()
    pair.eof(pair.slow)  # The server's TCP stream ends without close_notify.
    pair.host.run_soon()
    assert pair.capp.received == b"data"
    assert pair.capp.events == ["made", "eof", ("lost", None)]
    assert pair.clow.closed


def test_eof_during_handshake_fails_the_waiter() -> None:
    pair = Pair()
    pair.eof(pair.slow)
    pair.host.run_soon()
    assert isinstance(pair.cwait.exc, ConnectionResetError)
    assert pair.capp.events == []  # The application never heard of the connection.
    assert pair.clow.closed


def test_hostname_mismatch_fails_the_handshake() -> None:
    pair = Pair(hostname="other.test")
    pair.pump()
    assert isinstance(pair.cwait.exc, ssl.SSLCertVerificationError)
    assert pair.capp.events == []
    assert pair.clow.closed
    assert pair.host.errors == []  # An SSLError is an OSError: not reported.


def test_handshake_timeout() -> None:
    pair = Pair(ssl_handshake_timeout=5.0)
    (timer,) = [t for t in pair.host.live_timers() if t.callback and t.delay == 5.0][:1]
    pair.host.fire(timer)
    pair.host.run_soon()
    assert isinstance(pair.cwait.exc, ConnectionAbortedError)
    assert "SSL handshake is taking longer than 5.0 seconds" in str(pair.cwait.exc)
    assert pair.clow.lost == []
    assert pair.clow.closed


def test_handshake_done_cancels_its_timer() -> None:
    pair = Pair(ssl_handshake_timeout=5.0)
    pair.pump()
    assert pair.host.live_timers() == []


def test_shutdown_timeout() -> None:
    pair = Pair(ssl_shutdown_timeout=2.0)
    pair.pump()
    pair.capp.transport.close()
    pair.host.run_soon()  # The close_notify is never carried: the peer does not answer.
    (timer,) = pair.host.live_timers()
    assert timer.delay == 2.0
    pair.host.fire(timer)
    pair.host.run_soon()
    ((_, exc),) = [e for e in pair.capp.events if isinstance(e, tuple)]
    assert isinstance(exc, TimeoutError)
    assert str(exc) == "SSL shutdown timed out"


def test_bad_timeouts_are_refused() -> None:
    client, _ = _contexts()
    with pytest.raises(ValueError, match="ssl_handshake_timeout should be a positive number"):
        TLSLayer(Host(), App(), client, None, ssl_handshake_timeout=0)
    with pytest.raises(ValueError, match="ssl_shutdown_timeout should be a positive number"):
        TLSLayer(Host(), App(), client, None, ssl_shutdown_timeout=-1)


def test_slow_plain_transport_pauses_the_application() -> None:
    pair = Pair()
    pair.pump()
    transport = pair.capp.transport
    transport.set_write_buffer_limits(high=1000, low=100)
    assert transport.get_write_buffer_limits() == (100, 1000)
    pair.client.pause_writing()  # The plain transport's buffer is full.
    transport.write(b"x" * 2000)
    assert transport.get_write_buffer_size() >= 2000
    assert pair.capp.events == ["made", "pause"]
    assert not pair.clow.wire
    pair.client.resume_writing()
    assert transport.get_write_buffer_size() == 0
    assert pair.capp.events == ["made", "pause", "resume"]
    pair.pump()
    assert pair.sapp.received == b"x" * 2000


def test_paused_application_pauses_the_plain_transport() -> None:
    pair = Pair()
    pair.pump()
    server = pair.sapp.transport
    server.set_read_buffer_limits(high=4096)
    server.pause_reading()
    assert not server.is_reading()
    pair.capp.transport.write(b"y" * 20000)
    pair.pump()
    assert pair.sapp.received == b""
    assert not pair.slow.reading  # Ciphertext passed the read high-water mark.
    assert server.get_read_buffer_size() >= 4096
    server.resume_reading()
    pair.pump()
    assert pair.sapp.received == b"y" * 20000
    assert pair.slow.reading


def test_buffered_protocol_application() -> None:
    app = BufferedApp(size=7)
    pair = Pair(server_app=app)
    pair.pump()
    payload = bytes(range(256)) * 40
    pair.capp.transport.write(payload)
    pair.pump()
    assert app.received == payload


def test_buffered_protocol_with_a_large_bytearray() -> None:
    # Several records land in one buffer: asyncio reads the second into a copy of the
    # bytearray's tail (and loses it); the layer reads through a view.
    app = BufferedApp(size=100_000)
    pair = Pair(server_app=app)
    pair.pump()
    payload = bytes(range(256)) * 1000
    pair.capp.transport.write(payload)
    pair.pump()
    assert app.received == payload


def test_second_close_forgets_the_layer_and_answers_as_closed() -> None:
    pair = Pair()
    pair.pump()
    transport = pair.capp.transport
    transport.close()
    transport.close()  # Forgets the layer: no cycle through the application's protocol.
    assert transport._layer is None
    assert transport.is_closing()
    assert not transport.is_reading()
    transport.pause_reading()
    transport.resume_reading()
    transport.write(b"dropped")
    assert transport.get_write_buffer_size() == 0
    assert transport.get_read_buffer_size() == 0
    assert transport.get_write_buffer_limits() == (128 * 1024, 512 * 1024)
    with pytest.raises(ValueError, match="must be >= low"):
        transport.set_write_buffer_limits(high=1, low=2)
    pair.pump()  # The layer goes on without it: close_notify, then the end.
    assert pair.capp.events[-1] == ("lost", None)
    assert pair.sapp.received == b""


def test_eof_while_application_paused_waits_for_it() -> None:
    pair = Pair()
    pair.pump()
    pair.capp.transport.pause_reading()
    pair.sapp.transport.write(b"tail")
    pair.pump()
    assert pair.client.eof_received() is True  # Keep the plain transport: data is unread.
    assert pair.capp.received == b""
    pair.capp.transport.resume_reading()
    pair.host.run_soon()
    assert pair.capp.received == b"tail"
    assert pair.capp.events == ["made", "eof", ("lost", None)]
    assert pair.clow.closed


def test_abort_drops_everything() -> None:
    pair = Pair()
    pair.pump()
    pair.client.pause_writing()
    pair.capp.transport.write(b"z" * 100)
    pair.capp.transport.abort()
    pair.host.run_soon()
    assert pair.capp.events == ["made", ("lost", None)]
    assert pair.capp.transport.is_closing()


def test_write_type_is_checked() -> None:
    pair = Pair()
    pair.pump()
    with pytest.raises(TypeError, match="data: expecting a bytes-like instance, got str"):
        pair.capp.transport.write("text")
    with pytest.raises(NotImplementedError):
        pair.capp.transport.write_eof()
    assert pair.capp.transport.can_write_eof() is False


def test_application_errors_are_reported() -> None:
    class Failing(App):
        def data_received(self, data: bytes) -> None:
            raise ZeroDivisionError

    app = Failing()
    pair = Pair(server_app=app)
    pair.pump()
    pair.capp.transport.write(b"boom")
    pair.pump()
    (context,) = pair.host.errors
    assert context["message"] == "Fatal error on SSL protocol"
    assert isinstance(context["exception"], ZeroDivisionError)
    assert isinstance(app.events[-1][1], ZeroDivisionError)


class TLSMachine(RuleBasedStateMachine):
    """Both directions at once, under arbitrary delivery, flow control and closing."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()
        self.pair.pump()
        self.sent = {"c": bytearray(), "s": bytearray()}
        self.counter = 0
        self.closed: list[str] = []  # Sides whose application called close(), in order.

    def _side(self, side: str) -> tuple[App, Lower, TLSLayer]:
        pair = self.pair
        if side == "c":
            return pair.capp, pair.clow, pair.client
        return pair.sapp, pair.slow, pair.server

    @rule(side=st.sampled_from("cs"), size=st.integers(1, 40000))
    def write(self, side: str, size: int) -> None:
        app, _, _ = self._side(side)
        data = bytes((self.counter + i) % 251 for i in range(size))
        self.counter += size
        closing = app.transport.is_closing()
        app.transport.write(data)
        if not closing:  # Once closing, writes are dropped (as in asyncio).
            self.sent[side] += data

    @precondition(lambda self: len(self.closed) < 2)
    @rule(side=st.sampled_from("cs"))
    def close(self, side: str) -> None:
        app, _, _ = self._side(side)
        if side in self.closed:
            return
        app.transport.close()
        assert app.transport.is_closing()
        self.closed.append(side)
        self.pair.host.run_soon()

    @rule(side=st.sampled_from("cs"), n=st.integers(1, 20000))
    def deliver(self, side: str, n: int) -> None:
        _, lower, _ = self._side(side)
        lower.deliver(n)
        self.pair.host.run_soon()

    @rule(side=st.sampled_from("cs"), paused=st.booleans())
    def app_reading(self, side: str, paused: bool) -> None:
        app, _, _ = self._side(side)
        if paused:
            app.transport.pause_reading()
        else:
            app.transport.resume_reading()
        self.pair.host.run_soon()

    @rule(side=st.sampled_from("cs"), paused=st.booleans())
    def lower_writing(self, side: str, paused: bool) -> None:
        _, _, layer = self._side(side)
        if paused:
            layer.pause_writing()
        else:
            layer.resume_writing()

    @invariant()
    def prefix_in_order(self) -> None:
        assert self.pair.sapp.received == self.sent["c"][: len(self.pair.sapp.received)]
        assert self.pair.capp.received == self.sent["s"][: len(self.pair.capp.received)]

    @invariant()
    def flow_control_alternates(self) -> None:
        for app in (self.pair.capp, self.pair.sapp):
            flow = [e for e in app.events if e in ("pause", "resume")]
            assert flow == ["pause", "resume"] * (len(flow) // 2) + ["pause"] * (len(flow) % 2)

    def teardown(self) -> None:
        pair = self.pair
        for app, _, layer in (self._side("c"), self._side("s")):
            app.transport.resume_reading()
            layer.resume_writing()
        pair.pump(5000)
        assert pair.host.errors == []
        if not self.closed:
            assert pair.sapp.received == self.sent["c"]
            assert pair.capp.received == self.sent["s"]
            assert pair.client._get_write_buffer_size() == 0
            assert pair.server._get_write_buffer_size() == 0
            return
        # A side that closed alone had everything it wrote delivered (close flushes), then
        # the close_notify exchange ended both connections; what the other side wrote in
        # the meantime may have been dropped (it asked for no more).  When both closed,
        # each may have stopped reading before the other's last bytes came.
        if len(self.closed) == 1:
            first = self.closed[0]
            other = "s" if first == "c" else "c"
            peer_app, _, _ = self._side(other)
            assert peer_app.received == self.sent[first]
        for app, lower, _ in (self._side("c"), self._side("s")):
            assert lower.closed
            assert app.events[-1] == ("lost", None)
            assert app.events.count(("lost", None)) == 1
            assert "eof" in app.events


TestTLSMachine = TLSMachine.TestCase
TestTLSMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
