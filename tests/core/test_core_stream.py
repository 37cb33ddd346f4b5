"""The stream transport state machine against a reference model, with a scripted channel.

The channel stands in for any driver: it accepts as many bytes as the test says, reports
writability when the test says, and records what the transport asked of it.  The model is
the plain statement of asyncio's transport contract: the bytes on the wire are a prefix of
the bytes written, in order, none twice; the buffer holds exactly the rest; pause_writing and
resume_writing alternate at the water marks; connection_lost comes once, after the last byte
when closing, and the channel is closed then; write_eof half-closes once the buffer is empty.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from _fakes import Channel, Host
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sansloop.core import StreamTransportCore


class Recorder:
    """A protocol that records its callbacks."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.received = bytearray()
        self.keep_open = False

    def connection_made(self, transport: object) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))


def _new() -> tuple[Host, Channel, Recorder, StreamTransportCore]:
    host, channel, protocol = Host(), Channel(), Recorder()
    transport = StreamTransportCore(host, channel, protocol)
    transport.start()
    host.run_soon()
    return host, channel, protocol, transport


class TransportMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.host, self.channel, self.protocol, self.transport = _new()
        self.written = bytearray()  # Every byte accepted by write(), in order.
        self.closing = False
        self.aborted = False
        # No more writes accepted: aborted, or closed with nothing left to send.  (asyncio
        # still buffers writes made between close() and the last byte leaving.)
        self.dead = False
        self.eof = False
        self.high, self.low = 64 * 1024, 16 * 1024

    def _lost(self) -> list[Any]:
        return [e for e in self.protocol.events if isinstance(e, tuple)]

    @rule(data=st.binary(min_size=0, max_size=3000), kind=st.sampled_from(["b", "ba", "mv"]))
    def write(self, data: bytes, kind: str) -> None:
        payload: Any = {"b": data, "ba": bytearray(data), "mv": memoryview(data)}[kind]
        if self.eof:
            with pytest.raises(RuntimeError):
                self.transport.write(payload)
            return
        self.transport.write(payload)
        if isinstance(payload, bytearray):
            payload[:] = b"\xff" * len(payload)  # Reusing the buffer must not matter.
        if not self.dead:
            self.written += data

    @rule(n=st.integers(min_value=0, max_value=5000))
    def kernel_takes(self, n: int) -> None:
        self.channel.accept = n

    @precondition(lambda self: self.channel.writing)
    @rule()
    def writable(self) -> None:
        pending = self.transport.pending()
        n = min(self.channel.accept, len(pending))
        self.channel.wire += bytes(pending[:n])
        self.transport.sent(n)
        if self.closing and not self.transport.get_write_buffer_size():
            self.dead = True

    @rule(high=st.integers(min_value=0, max_value=20000), data=st.data())
    def set_limits(self, high: int, data: st.DataObject) -> None:
        low = data.draw(st.integers(min_value=0, max_value=high))
        self.transport.set_write_buffer_limits(high=high, low=low)
        self.high, self.low = high, low

    @rule()
    def write_eof(self) -> None:
        self.transport.write_eof()
        if not self.closing and not self.aborted:
            self.eof = True

    @rule()
    def close(self) -> None:
        self.transport.close()
        self.closing = True
        if not self.transport.get_write_buffer_size():
            self.dead = True

    @rule()
    def abort(self) -> None:
        self.transport.abort()
        self.aborted = self.dead = True

    @rule()
    def pause_reading(self) -> None:
        self.transport.pause_reading()

    @rule()
    def resume_reading(self) -> None:
        self.transport.resume_reading()

    @rule(data=st.binary(min_size=1, max_size=100))
    def receive(self, data: bytes) -> None:
        if self.channel.reading:
            before = len(self.protocol.received)
            self.transport.received(data)
            assert self.protocol.received[before:] == data

    @rule()
    def run_callbacks(self) -> None:
        self.host.run_soon()

    @invariant()
    def wire_is_a_prefix_of_what_was_written(self) -> None:
        assert self.channel.wire == self.written[: len(self.channel.wire)]

    @invariant()
    def buffer_holds_exactly_the_rest(self) -> None:
        if self.aborted or self._lost():
            return
        size = self.transport.get_write_buffer_size()
        assert size == len(self.written) - len(self.channel.wire)
        assert self.channel.writing == (size > 0)

    @invariant()
    def pause_and_resume_alternate(self) -> None:
        flow = [e for e in self.protocol.events if e in ("pause", "resume")]
        assert all(a != b for a, b in itertools.pairwise(flow))
        if flow and flow[0] == "resume":
            raise AssertionError("resume_writing before pause_writing")

    @invariant()
    def reading_follows_the_state(self) -> None:
        if self.closing or self.aborted:
            assert not self.channel.reading
            assert not self.transport.is_reading()
        else:
            assert self.channel.reading == self.transport.is_reading()

    @invariant()
    def lost_once_and_only_when_done(self) -> None:
        lost = self._lost()
        assert len(lost) <= 1
        assert self.channel.closed == len(lost)
        if lost:
            assert lost[0] == ("lost", None)
            if not self.aborted:
                assert self.channel.wire == self.written  # close() flushed every byte.

    @invariant()
    def half_close_once_after_the_last_byte(self) -> None:
        assert self.channel.shutdowns <= 1
        if self.channel.shutdowns:
            assert self.eof
            assert self.channel.wire == self.written


TestTransportMachine = TransportMachine.TestCase
TestTransportMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_close_flushes_then_loses_once() -> None:
    host, channel, protocol, transport = _new()
    transport.write(b"abc")
    assert channel.writing
    transport.close()
    host.run_soon()
    assert protocol.events == ["made"]  # Still flushing.
    channel.accept = 10
    channel.wire += bytes(transport.pending())
    transport.sent(3)
    assert protocol.events == ["made", ("lost", None)]
    assert channel.closed == 1
    transport.close()
    host.run_soon()
    assert channel.closed == 1


def test_abort_after_close_flushed_is_harmless() -> None:
    host, channel, protocol, transport = _new()
    transport.write(b"abc")
    transport.close()
    channel.accept = 10
    transport.sent(3)
    assert protocol.events == ["made", ("lost", None)]
    transport.abort()
    transport.write(b"late")
    host.run_soon()
    assert protocol.events == ["made", ("lost", None)]
    assert channel.closed == 1


def test_write_failure_is_fatal_and_reported_quietly() -> None:
    host, channel, protocol, transport = _new()
    channel.fail = ConnectionResetError("gone")
    transport.write(b"x")
    host.run_soon()
    assert protocol.events[-1][0] == "lost"
    assert isinstance(protocol.events[-1][1], ConnectionResetError)
    assert host.errors == []  # OS errors are the peer's doing: no handler call.


def test_protocol_failure_goes_to_the_handler() -> None:
    host, _channel, protocol, transport = _new()

    def broken(data: bytes) -> None:
        raise ZeroDivisionError

    protocol.data_received = broken  # type: ignore[method-assign]
    transport.received(b"x")
    host.run_soon()
    assert [c["message"] for c in host.errors] == [
        "Fatal error: protocol.data_received() call failed."
    ]
    assert isinstance(protocol.events[-1][1], ZeroDivisionError)


def test_eof_kept_open_stops_reading_only() -> None:
    _host, channel, protocol, transport = _new()
    protocol.keep_open = True
    transport.received(b"")
    assert protocol.events == ["made", "eof"]
    assert not channel.reading
    assert not transport.is_closing()
    protocol.keep_open = False
    host2, _channel2, protocol2, transport2 = _new()
    transport2.received(b"")
    host2.run_soon()
    assert protocol2.events == ["made", "eof", ("lost", None)]


def test_buffered_reads_use_the_protocols_buffer() -> None:
    host, channel = Host(), Channel()

    class Buffered:
        def __init__(self) -> None:
            self.buf = bytearray(4)
            self.got: list[int] = []

        def connection_made(self, transport: object) -> None:
            pass

        def get_buffer(self, hint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, n: int) -> None:
            self.got.append(n)

        def connection_lost(self, exc: object) -> None:
            pass

    protocol = Buffered()
    transport = StreamTransportCore(host, channel, protocol)
    assert transport.reads_into_buffer
    assert transport.recv_buffer() is protocol.buf
    transport.received_into(3)
    assert protocol.got == [3]
