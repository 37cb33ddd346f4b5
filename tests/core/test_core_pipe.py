"""The pipe transport state machines, driven through their public inputs with a scripted channel.

asyncio's pipe rules, as the model states them: on the read end, end of file schedules
``eof_received`` then ``connection_lost(None)`` whatever ``eof_received`` returns, and a
protocol error in ``data_received`` propagates; ``EIO`` is a quiet end.  On the write end the
bytes on the wire are a prefix of the bytes written before closing, in order, none twice;
``write_eof`` is ``close``; writes after closing are dropped; ``connection_lost`` comes once,
after the last byte, and closes the channel; the reader going away is ``connection_lost(None)``
with nothing buffered and ``BrokenPipeError`` otherwise.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from _fakes import Channel, Host
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sansloop.core import PipeReadTransportCore, PipeWriteTransportCore


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.received = bytearray()

    def connection_made(self, transport: object) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        return True  # ignored by pipes: connection_lost follows anyway

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))


def _reader() -> tuple[Host, Channel, Recorder, PipeReadTransportCore]:
    host, channel, protocol = Host(), Channel(), Recorder()
    transport = PipeReadTransportCore(host, channel, protocol)
    transport.start()
    host.run_soon()
    return host, channel, protocol, transport


def _writer(watch_peer: bool = True) -> tuple[Host, Channel, Recorder, PipeWriteTransportCore]:
    host, channel, protocol = Host(), Channel(), Recorder()
    transport = PipeWriteTransportCore(host, channel, protocol, watch_peer=watch_peer)
    transport.start()
    host.run_soon()
    return host, channel, protocol, transport


# -- the read end -----------------------------------------------------------------------


def test_read_end_starts_reading_after_connection_made() -> None:
    _host, channel, protocol, transport = _reader()
    assert protocol.events == ["made"]
    assert channel.reading
    assert transport.is_reading()


def test_eof_schedules_eof_received_then_connection_lost_whatever_it_returns() -> None:
    host, channel, protocol, transport = _reader()
    transport.received(b"abc")
    transport.received(b"")
    assert transport.is_closing()
    assert not channel.reading
    assert protocol.events == ["made"]  # both scheduled, neither run yet
    host.run_soon()
    assert protocol.events == ["made", "eof", ("lost", None)]
    assert protocol.received == b"abc"
    assert channel.closed == 1


def test_data_received_errors_propagate() -> None:
    _host, _channel, protocol, transport = _reader()

    def boom(data: bytes) -> None:
        raise ZeroDivisionError

    protocol.data_received = boom  # type: ignore[method-assign]
    with pytest.raises(ZeroDivisionError):
        transport.received(b"x")
    assert not transport.is_closing()


@pytest.mark.parametrize(("code", "reported"), [(errno.EIO, False), (errno.EBADF, True)])
def test_read_errors_end_the_pipe_and_eio_is_quiet(code: int, reported: bool) -> None:
    host, _channel, protocol, transport = _reader()
    exc = OSError(code, "read failed")
    transport.read_failed(exc)
    host.run_soon()
    assert protocol.events == ["made", ("lost", exc)]
    assert bool(host.errors) is reported
    if reported:
        assert host.errors[0]["message"] == "Fatal read error on pipe transport"


def test_pause_resume_and_close_of_the_read_end() -> None:
    host, channel, protocol, transport = _reader()
    transport.pause_reading()
    assert not channel.reading
    assert not transport.is_reading()
    transport.resume_reading()
    assert channel.reading
    transport.close()
    transport.close()
    host.run_soon()
    assert protocol.events == ["made", ("lost", None)]
    assert channel.closed == 1
    transport.resume_reading()  # nothing happens once closed
    assert not channel.reading


# -- the write end ----------------------------------------------------------------------


def test_write_end_watches_the_peer_only_when_asked() -> None:
    assert _writer(watch_peer=True)[1].reading
    assert not _writer(watch_peer=False)[1].reading


def test_write_eof_is_close_and_flushes_first() -> None:
    host, channel, protocol, transport = _writer()
    transport.write(b"abcdef")
    assert channel.writing
    transport.write_eof()
    assert transport.is_closing()
    host.run_soon()
    assert ("lost", None) not in protocol.events  # bytes still buffered
    channel.accept = 100
    transport.sent(channel.send_now(transport.pending()))
    assert protocol.events[-1] == ("lost", None)
    assert bytes(channel.wire) == b"abcdef"
    assert channel.closed == 1


def test_writes_after_close_are_dropped() -> None:
    host, channel, protocol, transport = _writer()
    channel.accept = 100
    transport.close()
    transport.write(b"late")
    host.run_soon()
    assert channel.wire == b""
    assert protocol.events == ["made", ("lost", None)]


def test_peer_gone_with_bytes_buffered_is_broken_pipe() -> None:
    host, _channel, protocol, transport = _writer()
    transport.write(b"stuck")
    transport.received(b"")  # the write end became readable: the reader closed
    assert transport.get_write_buffer_size() == 0
    host.run_soon()
    assert protocol.events[0] == "made"
    assert isinstance(protocol.events[-1][1], BrokenPipeError)
    assert host.errors == []


def test_peer_gone_idle_is_a_clean_end() -> None:
    host, _channel, protocol, transport = _writer()
    transport.received(b"")
    host.run_soon()
    assert protocol.events == ["made", ("lost", None)]


def test_write_error_is_fatal_and_quiet_for_os_errors() -> None:
    host, channel, protocol, transport = _writer()
    channel.fail = BrokenPipeError()
    transport.write(b"x")
    host.run_soon()
    assert protocol.events == ["made", ("lost", channel.fail)]
    assert host.errors == []
    transport.write(b"dropped")  # quietly, after the connection was lost


def test_non_bytes_is_refused_as_asyncio_asserts() -> None:
    _, _, _, transport = _writer()
    with pytest.raises(AssertionError):
        transport.write("text")  # type: ignore[arg-type]


# -- the write end against the model ----------------------------------------------------


class WritePipeModel(RuleBasedStateMachine):
    """Random writes, partial sends, closes, aborts and peer closes against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.host, self.channel, self.protocol, self.transport = _writer()
        self.transport.set_write_buffer_limits(high=64, low=16)
        self.written = bytearray()  # accepted by write() before closing
        self.closed = False
        self.aborted = False

    @rule(data=st.binary(min_size=0, max_size=100))
    def write(self, data: bytes) -> None:
        self.transport.write(data)
        if not self.closed and not self.aborted:
            self.written += data

    @rule(n=st.integers(min_value=0, max_value=150))
    def writable(self, n: int) -> None:
        if not self.channel.writing:
            return
        self.channel.accept = n
        try:
            sent = self.channel.send_now(self.transport.pending())
        except BlockingIOError:
            sent = 0
        self.transport.sent(sent)
        self.channel.accept = 0

    @rule()
    def write_error(self) -> None:
        # The OS refuses the next write (EPIPE): the pipe is lost, the rest dropped.
        if not self.channel.writing:
            return
        self.transport.write_failed(BrokenPipeError())
        self.aborted = True

    @rule(high=st.integers(min_value=0, max_value=200))
    def limits(self, high: int) -> None:
        self.transport.set_write_buffer_limits(high=high)

    @rule()
    def close(self) -> None:
        self.transport.close()
        self.closed = True

    @rule()
    def abort(self) -> None:
        self.transport.abort()
        self.aborted = True

    @rule()
    def peer_gone(self) -> None:
        buffered = self.transport.get_write_buffer_size()
        lost_already = bool(self.transport._conn_lost) or self.transport.is_closing()
        self.transport.received(b"")
        self.host.run_soon()
        lost = [e for e in self.protocol.events if isinstance(e, tuple)]
        if not lost_already:
            assert len(lost) == 1
            assert isinstance(lost[0][1], BrokenPipeError) is bool(buffered)
        self.aborted = True  # bytes may be left unsent from here on

    @rule()
    def run_callbacks(self) -> None:
        self.host.run_soon()

    @invariant()
    def wire_is_a_prefix_of_what_was_written(self) -> None:
        assert bytes(self.written).startswith(bytes(self.channel.wire))

    @invariant()
    def buffer_holds_the_rest(self) -> None:
        if not self.aborted and not self.transport._conn_lost:
            assert self.transport.get_write_buffer_size() == len(self.written) - len(
                self.channel.wire
            )

    @invariant()
    def lost_once_and_after_the_last_byte_when_closing(self) -> None:
        lost = [e for e in self.protocol.events if isinstance(e, tuple)]
        assert len(lost) <= 1
        if lost and not self.aborted:
            assert bytes(self.channel.wire) == bytes(self.written)
        if lost:
            assert self.channel.closed == 1

    @invariant()
    def pause_and_resume_alternate(self) -> None:
        flow = [e for e in self.protocol.events if e in ("pause", "resume")]
        assert flow == ["pause", "resume"] * (len(flow) // 2) + ["pause"] * (len(flow) % 2)


WritePipeModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_write_pipe_model = WritePipeModel.TestCase
