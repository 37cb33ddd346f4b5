"""The datagram transport state machine against a reference model, with a scripted channel.

The channel stands in for any driver: it takes as many datagrams as the test says, fails the
next send when the test says, reports writability when the test says, and records what the
transport asked of it.  The model is the plain statement of asyncio's datagram transport:
datagrams leave whole, in order, none twice, each either on the wire or reported to
``error_received``; the queue holds exactly the rest and its size counts each datagram's bytes
plus the header size; ``pause_writing``/``resume_writing`` alternate at the water marks;
``connection_lost`` comes once, after the last datagram when closing, and the channel is
closed then.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from _fakes import Host
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sansloop.core import LOG_THRESHOLD_FOR_CONNLOST_WRITES, DatagramTransportCore

PEER = ("10.0.0.1", 9)
OTHER = ("10.0.0.2", 9)


class Channel:
    """A scripted channel: ``accept`` datagrams go at once; records every request."""

    def __init__(self) -> None:
        self.accept = 1_000_000
        #: (data, address); address is "connected" for send_now.
        self.wire: list[tuple[bytes, Any]] = []
        self.writing = False
        self.reading = False
        self.closed = 0
        self.fail: BaseException | None = None

    def _send(self, data: Any, address: Any) -> None:
        if self.closed:
            raise AssertionError("sent on a closed channel")
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        if not self.accept:
            raise BlockingIOError
        self.accept -= 1
        self.wire.append((bytes(data), address))

    def send_now(self, data: Any) -> None:
        self._send(data, "connected")

    def send_to_now(self, data: Any, address: Any) -> None:
        self._send(data, address)

    def want_write(self) -> None:
        self.writing = True

    def stop_write(self) -> None:
        self.writing = False

    def start_reading(self) -> None:
        self.reading = True

    def stop_reading(self) -> None:
        self.reading = False

    def close(self) -> None:
        self.closed += 1
        self.reading = self.writing = False


class Recorder:
    """A datagram protocol that records its callbacks."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.received: list[tuple[bytes, Any]] = []
        self.errors: list[BaseException] = []

    def connection_made(self, transport: object) -> None:
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))

    def error_received(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))


def _new(**kwargs: Any) -> tuple[Host, Channel, Recorder, DatagramTransportCore]:
    host, channel, protocol = Host(), Channel(), Recorder()
    transport = DatagramTransportCore(host, channel, protocol, **kwargs)
    transport.start()
    host.run_soon()
    return host, channel, protocol, transport


def _lost(protocol: Recorder) -> list[Any]:
    return [e for e in protocol.events if isinstance(e, tuple) and e[0] == "lost"]


# -- the model ---------------------------------------------------------------------------


class DatagramMachine(RuleBasedStateMachine):
    """The core beside a list-based model of asyncio's datagram transport."""

    @initialize(
        mode=st.sampled_from(["unconnected", "connected", "broadcast"]),
        header=st.sampled_from([0, 8]),
        send_empty=st.booleans(),
    )
    def setup(self, mode: str, header: int, send_empty: bool) -> None:
        self.mode = mode
        self.header = header
        self.send_empty = send_empty
        address = None if mode == "unconnected" else PEER
        self.host, self.channel, self.protocol, self.transport = _new(
            address=address,
            connected=mode == "connected",
            header_size=header,
            send_empty=send_empty,
        )
        # The model: what went out (or failed), in order, and what waits.
        self.queue: list[tuple[bytes, Any]] = []
        self.outcomes: list[tuple[bytes, Any]] = []  # on the wire or "error"
        self.high, self.low = 64 * 1024, 16 * 1024
        self.paused = False
        self.closing = False
        self.dead = False  # connection_lost scheduled or called
        self.writing = False  # the channel is asked to call send_ready

    def _wire_address(self, addr: Any) -> Any:
        if self.mode == "connected":
            return "connected"
        if self.mode == "broadcast":
            return PEER
        return addr

    def _size(self) -> int:
        return sum(len(d) + self.header for d, _ in self.queue)

    @rule(
        data=st.binary(max_size=40_000),
        addr=st.sampled_from([None, PEER, OTHER]),
        error=st.booleans(),
    )
    def sendto(self, data: bytes, addr: Any, error: bool) -> None:
        if self.mode == "unconnected" and addr is None:
            addr = OTHER  # Tested on its own: sendto(data) without an address is fatal.
        if not data and not self.send_empty:
            self.transport.sendto(data, OTHER)  # Dropped before the address is looked at.
            return
        if self.mode != "unconnected" and addr not in (None, PEER):
            with pytest.raises(ValueError, match="Invalid address"):
                self.transport.sendto(data, addr)
            return
        accept = self.channel.accept
        errors_before = len(self.protocol.errors)
        if error:
            self.channel.fail = ConnectionRefusedError(111, "refused")
        self.transport.sendto(data, addr)
        self.channel.fail = None
        # The model of asyncio's sendto().
        if self.dead and (self.mode != "unconnected" or self.channel.closed):
            return  # Dropped: the connection is lost.
        if not self.queue:
            if error:
                self.outcomes.append((data, "error"))
                assert len(self.protocol.errors) == errors_before + 1
                return
            if accept:
                self.outcomes.append((data, self._wire_address(addr)))
                return
            self.writing = True
        self.queue.append((data, addr))
        if self._size() > self.high and not self.paused:
            self.paused = True

    @rule(n=st.integers(min_value=0, max_value=5))
    def socket_takes(self, n: int) -> None:
        self.channel.accept = n

    @rule(error=st.booleans())
    def writable(self, error: bool) -> None:
        if not self.channel.writing:
            return
        # The model of asyncio's _sendto_ready, predicted before the transport runs it.
        error = error and bool(self.queue)
        accept = self.channel.accept
        failed = False
        while self.queue:
            data, addr = self.queue[0]
            if error:
                self.queue.pop(0)
                self.outcomes.append((data, "error"))
                failed = True  # The rest waits; the writer stays.
                break
            if not accept:
                break
            accept -= 1
            self.queue.pop(0)
            self.outcomes.append((data, self._wire_address(addr)))
        if not failed:
            if self.paused and self._size() <= self.low:
                self.paused = False
            if not self.queue:
                self.writing = False
                self.dead = self.dead or self.closing
        if error:
            self.channel.fail = OSError(90, "message too long")
        self.transport.send_ready()
        self.channel.fail = None

    @rule(
        high=st.integers(min_value=0, max_value=200_000),
        low=st.integers(min_value=0, max_value=200_000),
    )
    def set_limits(self, high: int, low: int) -> None:
        if not high >= low:
            with pytest.raises(ValueError, match=r"must be >= low"):
                self.transport.set_write_buffer_limits(high, low)
            return
        self.transport.set_write_buffer_limits(high, low)
        self.high, self.low = high, low
        # After connection_lost the protocol is gone: nothing is told any more.
        if self._size() > high and not self.paused and not self.channel.closed:
            self.paused = True

    @rule()
    def close(self) -> None:
        self.transport.close()
        if not self.closing and not self.queue:
            self.dead = True
            self.writing = False
        self.closing = True

    @rule()
    def abort(self) -> None:
        self.transport.abort()
        if not self.dead:
            self.queue.clear()
            self.dead = True
            self.writing = False
        self.closing = True

    @rule()
    def pause_reading(self) -> None:
        self.transport.pause_reading()

    @rule()
    def resume_reading(self) -> None:
        self.transport.resume_reading()

    @rule(data=st.binary(max_size=100), error=st.booleans())
    def receive(self, data: bytes, error: bool) -> None:
        if not self.channel.reading:
            return
        if error:
            before = len(self.protocol.errors)
            self.transport.receive_failed(ConnectionRefusedError(111, "refused"))
            assert len(self.protocol.errors) == before + 1
        else:
            before = len(self.protocol.received)
            self.transport.received(data, OTHER)
            assert self.protocol.received[before:] == [(data, OTHER)]

    @rule()
    def run_callbacks(self) -> None:
        self.host.run_soon()

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def datagrams_leave_whole_in_order(self) -> None:
        wire = [(d, a) for d, a in self.outcomes if a != "error"]
        assert self.channel.wire == wire
        assert len(self.protocol.errors) >= sum(a == "error" for _, a in self.outcomes)

    @invariant()
    def queue_holds_exactly_the_rest(self) -> None:
        assert self.transport.get_write_buffer_size() == self._size()
        if self.channel.closed:
            assert not self.channel.writing
        else:
            assert self.channel.writing == self.writing

    @invariant()
    def pause_and_resume_alternate_at_the_marks(self) -> None:
        flow = [e for e in self.protocol.events if e in ("pause", "resume")]
        assert all(a != b for a, b in itertools.pairwise(flow))
        assert (flow[-1] == "pause" if flow else False) == self.paused

    @invariant()
    def reading_follows_the_state(self) -> None:
        if self.closing:
            assert not self.channel.reading
            assert not self.transport.is_reading()
        else:
            assert self.channel.reading == self.transport.is_reading()

    @invariant()
    def lost_once_and_only_when_done(self) -> None:
        lost = _lost(self.protocol)
        assert len(lost) <= 1
        assert self.channel.closed == len(lost)
        if lost:
            assert lost[0] == ("lost", None)
            assert self.dead
            assert not self.channel.writing
            assert not self.channel.reading
        if not self.dead:
            assert not lost
        assert self.transport.is_closing() == self.closing


TestDatagramMachine = DatagramMachine.TestCase
TestDatagramMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


# -- single behaviours -------------------------------------------------------------------


def test_connected_sends_with_send_unconnected_with_sendto() -> None:
    _, channel, _, transport = _new(address=PEER, connected=True)
    transport.sendto(b"a")
    transport.sendto(b"b", PEER)
    assert channel.wire == [(b"a", "connected"), (b"b", "connected")]
    _, channel, _, transport = _new()
    transport.sendto(b"c", OTHER)
    assert channel.wire == [(b"c", OTHER)]
    # allow_broadcast: fixed to an address, but the socket is not connected.
    _, channel, _, transport = _new(address=PEER, connected=False)
    transport.sendto(b"d")
    assert channel.wire == [(b"d", PEER)]


def test_a_socket_connected_without_remote_addr_sends_anywhere_with_send() -> None:
    # sock= an already connected socket: asyncio sends with send() and ignores the address.
    _, channel, _, transport = _new(address=None, connected=True)
    transport.sendto(b"x", OTHER)
    assert channel.wire == [(b"x", "connected")]


def test_bad_data_and_bad_address() -> None:
    _, channel, _, transport = _new(address=PEER, connected=True)
    with pytest.raises(TypeError, match="data argument must be a bytes-like object, not 'str'"):
        transport.sendto("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^Invalid address: must be None or \('10.0.0.1', 9\)$"):
        transport.sendto(b"x", OTHER)
    assert channel.wire == []


@pytest.mark.parametrize(("send_empty", "header"), [(False, 0), (True, 8)])
def test_empty_datagrams_and_header_accounting(send_empty: bool, header: int) -> None:
    _, channel, _, transport = _new(header_size=header, send_empty=send_empty)
    transport.sendto(b"", OTHER)
    assert channel.wire == ([(b"", OTHER)] if send_empty else [])
    channel.accept = 0
    transport.sendto(b"abc", OTHER)
    transport.sendto(bytearray(b"de"), OTHER)
    transport.sendto(b"", OTHER)
    assert transport.get_write_buffer_size() == 5 + header * (3 if send_empty else 2)
    channel.accept = 1
    transport.send_ready()
    assert transport.get_write_buffer_size() == 2 + header * (2 if send_empty else 1)
    channel.accept = 10
    transport.send_ready()
    assert transport.get_write_buffer_size() == 0
    assert not channel.writing


def test_queued_data_is_copied() -> None:
    _, channel, _, transport = _new()
    channel.accept = 0
    data = bytearray(b"abc")
    transport.sendto(data, OTHER)
    data[:] = b"xyz"
    channel.accept = 1
    transport.send_ready()
    assert channel.wire == [(b"abc", OTHER)]


def test_send_errors_go_to_error_received_and_the_rest_waits() -> None:
    _, channel, protocol, transport = _new()
    refused = ConnectionRefusedError(111, "refused")
    channel.fail = refused
    transport.sendto(b"a", OTHER)
    assert protocol.errors == [refused]
    channel.accept = 0
    transport.sendto(b"b", OTHER)
    transport.sendto(b"c", OTHER)
    channel.accept = 5
    channel.fail = OSError(90, "too long")
    transport.send_ready()  # "b" fails; "c" waits for the next call, as in asyncio.
    assert channel.wire == []
    assert channel.writing
    transport.send_ready()
    assert channel.wire == [(b"c", OTHER)]
    assert not channel.writing
    assert not transport.is_closing()


@pytest.mark.parametrize("queued", [False, True])
def test_other_send_errors_are_fatal(queued: bool) -> None:
    host, channel, protocol, transport = _new()
    boom = RuntimeError("boom")
    if queued:
        channel.accept = 0
        transport.sendto(b"a", OTHER)
        channel.fail = boom
        transport.send_ready()
    else:
        channel.fail = boom
        transport.sendto(b"a", OTHER)
    assert [c["message"] for c in host.errors] == ["Fatal write error on datagram transport"]
    assert host.errors[0]["exception"] is boom
    assert transport.is_closing()
    assert transport.get_write_buffer_size() == 0
    host.run_soon()
    assert _lost(protocol) == [("lost", boom)]
    assert channel.closed == 1


def test_completion_style_failure_report() -> None:
    host, _, protocol, transport = _new()
    refused = ConnectionRefusedError(111, "refused")
    transport.send_failed(refused)
    assert protocol.errors == [refused]
    transport.send_failed(ValueError("bad"))
    assert [c["message"] for c in host.errors] == ["Fatal write error on datagram transport"]
    host.run_soon()
    assert len(_lost(protocol)) == 1
    transport.send_failed(OSError())  # After the end: ignored.
    assert protocol.errors == [refused]


def test_receive_errors() -> None:
    host, channel, protocol, transport = _new()
    refused = ConnectionRefusedError(111, "refused")
    transport.receive_failed(refused)
    assert protocol.errors == [refused]
    assert not transport.is_closing()
    boom = RuntimeError("boom")
    transport.receive_failed(boom)
    assert [c["message"] for c in host.errors] == ["Fatal read error on datagram transport"]
    assert not channel.reading
    transport.received(b"late", OTHER)
    assert protocol.received == []
    host.run_soon()
    assert _lost(protocol) == [("lost", boom)]


def test_close_flushes_then_loses_once() -> None:
    host, channel, protocol, transport = _new()
    channel.accept = 0
    transport.sendto(b"a", OTHER)
    transport.sendto(b"b", OTHER)
    transport.close()
    transport.close()
    assert not channel.reading
    host.run_soon()
    assert _lost(protocol) == []
    channel.accept = 1
    transport.send_ready()
    assert _lost(protocol) == []
    channel.accept = 1
    transport.send_ready()
    # The last datagram left: connection_lost is called at once, as in asyncio.
    assert _lost(protocol) == [("lost", None)]
    assert channel.wire == [(b"a", OTHER), (b"b", OTHER)]
    assert channel.closed == 1
    transport.abort()
    host.run_soon()
    assert len(_lost(protocol)) == 1


def test_abort_drops_the_queue() -> None:
    host, channel, protocol, transport = _new()
    channel.accept = 0
    transport.sendto(b"a", OTHER)
    transport.abort()
    assert not channel.writing
    assert transport.get_write_buffer_size() == 0
    host.run_soon()
    assert _lost(protocol) == [("lost", None)]
    assert channel.wire == []
    transport.close()
    host.run_soon()
    assert len(_lost(protocol)) == 1


def test_connected_sends_after_loss_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, channel, _, transport = _new(address=PEER, connected=True)
    transport.close()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(LOG_THRESHOLD_FOR_CONNLOST_WRITES + 1):
            transport.sendto(b"x")
    assert channel.wire == []
    warnings = [r for r in caplog.records if r.getMessage() == "socket.send() raised exception."]
    assert len(warnings) == 2  # The 5th and 6th drops, as asyncio counts them.
    host.run_soon()


def test_unconnected_sends_until_released() -> None:
    # asyncio's unconnected transport keeps its socket until connection_lost runs.
    host, channel, _, transport = _new()
    transport.close()
    transport.sendto(b"x", OTHER)
    assert channel.wire == [(b"x", OTHER)]
    host.run_soon()
    transport.sendto(b"y", OTHER)
    assert channel.wire == [(b"x", OTHER)]


def test_flow_control_callbacks_and_failures() -> None:
    host, channel, protocol, transport = _new(header_size=0)
    transport.set_write_buffer_limits(high=10)
    assert transport.get_write_buffer_limits() == (2, 10)
    channel.accept = 0
    transport.sendto(b"x" * 11, OTHER)
    assert protocol.events[-1] == "pause"
    channel.accept = 1
    transport.send_ready()
    assert protocol.events[-1] == "resume"

    def fail() -> None:
        raise RuntimeError("nope")

    protocol.pause_writing = fail  # type: ignore[method-assign]
    channel.accept = 0
    transport.sendto(b"y" * 11, OTHER)
    assert [c["message"] for c in host.errors] == ["protocol.pause_writing() failed"]
    protocol.resume_writing = fail  # type: ignore[method-assign]
    channel.accept = 1
    transport.send_ready()
    assert [c["message"] for c in host.errors][-1] == "protocol.resume_writing() failed"
    assert not transport.is_closing()


def test_limits_are_checked() -> None:
    _, _, _, transport = _new()
    with pytest.raises(ValueError, match=r"^high \(1\) must be >= low \(2\) must be >= 0$"):
        transport.set_write_buffer_limits(high=1, low=2)
    transport.set_write_buffer_limits(low=3)
    assert transport.get_write_buffer_limits() == (3, 12)


def test_reading_pauses_and_resumes() -> None:
    _, channel, _, transport = _new()
    assert channel.reading
    transport.pause_reading()
    assert not channel.reading
    assert not transport.is_reading()
    transport.resume_reading()
    assert channel.reading
    transport.close()
    transport.resume_reading()
    assert not channel.reading


def test_reading_starts_after_connection_made_unless_paused_first() -> None:
    host, channel, protocol = Host(), Channel(), Recorder()
    transport = DatagramTransportCore(host, channel, protocol)
    made: list[str] = []
    transport.start(lambda: made.append("waiter"))
    transport.pause_reading()
    host.run_soon()
    assert protocol.events == ["made"]
    assert made == ["waiter"]
    assert not channel.reading


def test_protocol_exceptions_propagate_to_the_caller() -> None:
    # asyncio calls datagram_received/error_received unguarded: the loop's handler sees them.
    _, channel, protocol, transport = _new()

    def fail(*args: Any) -> None:
        raise KeyError("protocol bug")

    protocol.datagram_received = fail  # type: ignore[method-assign]
    protocol.error_received = fail  # type: ignore[method-assign]
    with pytest.raises(KeyError):
        transport.received(b"x", OTHER)
    channel.fail = OSError()
    with pytest.raises(KeyError):
        transport.sendto(b"x", OTHER)
    assert not transport.is_closing()


def test_extra_info_and_protocol() -> None:
    extra = {"peername": PEER}
    _, _, protocol, transport = _new(extra=extra)
    # The core keeps the dict that asyncio.BaseTransport.get_extra_info reads.
    assert transport._extra is extra
    assert transport.get_protocol() is protocol
    other = Recorder()
    transport.set_protocol(other)
    assert transport.get_protocol() is other
